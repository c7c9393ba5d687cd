"""Guided Zoom (thesis ch. 6): patches, erasing, Algorithm 1, Algorithm 2, eq. (6.1), the saved refiner."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import mindgap
from mindgap import guided_zoom as gz
from mindgap.guided_zoom import patches


# ------------------------------------------------------------------ patches and erasing
def test_patch_is_centred_on_the_maximum_and_shifted_inside_at_borders():
    image = np.arange(100 * 80 * 3, dtype=np.float32).reshape(100, 80, 3)
    saliency_map = np.zeros((100, 80))
    saliency_map[50, 40] = 1.0
    centre = patches.peak(saliency_map)
    assert centre == (50, 40)
    side = patches.side_of(0.25, 100, 80)  # a quarter of the shorter side: 20 px
    assert side == 20
    assert patches.patch_box(centre, image.shape, 0.25) == (40, 30, 60, 50)  # rows 40..59 hold 50 at side // 2
    np.testing.assert_array_equal(patches.extract_patch(image, centre, 0.25), image[40:60, 30:50])
    # near the top-left and bottom-right corners the window moves inside, keeping its size
    assert patches.patch_box((3, 2), image.shape, 0.25) == (0, 0, 20, 20)
    assert patches.patch_box((99, 79), image.shape, 0.25) == (80, 60, 100, 80)
    assert patches.extract_patch(image, (99, 79), 0.25).shape == (20, 20, 3)
    # the thesis's ratio: 150 px on a 448 px input
    assert patches.side_of(patches.PATCH_FRACTION, 448, 448) == 150
    assert patches.side_of(patches.ERASE_FRACTION, 448, 448) == 85


def test_erasing_covers_exactly_the_stated_square_around_the_peak():
    image = np.ones((40, 40, 3), np.float32)
    erased = patches.erase(image, (20, 10), fraction=0.25, fill=-1.0)  # a 10 px square, rows 15..24, columns 5..14
    expected = np.ones_like(image)
    expected[15:25, 5:15] = -1.0
    np.testing.assert_array_equal(erased, expected)
    assert (image == 1).all()  # a copy
    # at a border the square is clipped, not moved
    clipped = patches.erase(image, (1, 38), fraction=0.25, fill=0.0)
    assert patches.erase_box((1, 38), image.shape, 0.25) == (0, 33, 6, 40)
    assert (clipped == 0).sum() == 6 * 7 * 3
    with pytest.raises(ValueError, match="fraction"):
        patches.erase(image, (1, 1), fraction=1.5)


# ------------------------------------------------------------------ toy models for Algorithms 1 and 2
def _brightness_model(size=8, num_classes=3):
    """A classifier whose logits are fixed multiples of the image mean: bright images are class 2, dark ones class 0."""
    inputs = keras.Input((size, size, 3))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(num_classes, activation="softmax", name="scores")
    outputs = dense(mean)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, num_classes), np.float32)
    kernel[:, 0], kernel[:, 2] = -10.0, 10.0
    dense.set_weights([kernel, np.zeros(num_classes, np.float32)])
    return model


def test_algorithm1_stops_for_a_sample_whose_erasure_flips_the_prediction():
    size = 8
    model = _brightness_model(size)
    # image 0: so bright that two 4x4 black squares leave it class 2; image 1: barely bright (0.05, sum 3.2), so any
    # black square around its peak, even one clipped to 2x2 at a corner (-4.2), makes its mean negative: class 0
    images = np.full((2, size, size, 3), 3.0, np.float32)
    images[1] = 0.05
    assert list(gz.predict(model, images).argmax(-1)) == [2, 2]
    pool = gz.evidence_pool(model, images, np.array([2, 2]), method="rise", rounds=2, patch_fraction=0.5, erase_fraction=0.5,
                            saliency_options={"num_masks": 64, "grid_size": 2, "batch_size": 64})
    assert sorted(zip(pool.sources.tolist(), pool.rounds.tolist())) == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert pool.patches.shape == (4, 4, 4, 3) and set(pool.labels.tolist()) == {2}
    # a misclassified image contributes nothing
    none = gz.evidence_pool(model, images[:1], np.array([0]), method="rise", rounds=2, saliency_options={"num_masks": 8})
    assert len(none) == 0


def test_the_next_peak_is_searched_outside_the_erased_squares(monkeypatch):
    from mindgap import saliency

    maps = np.zeros((1, 8, 8, 1), np.float32)
    maps[0, 2, 2, 0], maps[0, 6, 5, 0] = 1.0, 0.5  # the peak, and the best pixel outside rows/columns 0..3
    monkeypatch.setattr(saliency, "compute", lambda *arguments, **options: maps)
    model, images = _brightness_model(8), np.zeros((1, 8, 8, 3), np.float32)
    excluded = np.zeros((1, 8, 8), bool)
    excluded[0, :4, :4] = True
    assert gz.class_peaks(model, images, [[0]], "cam")[0, 0].tolist() == [2, 2]
    assert gz.class_peaks(model, images, [[0]], "cam", excluded=excluded)[0, 0].tolist() == [6, 5]
    assert gz.class_peaks(model, images, [[0]], "cam", excluded=np.ones((1, 8, 8), bool))[0, 0].tolist() == [2, 2]


def _constant_evidence_model(size, num_classes, voted):
    """An 'Evidence CNN' that gives probability 1 to class ``voted`` whatever the patch."""
    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(num_classes, activation="softmax")
    model = keras.Model(inputs, dense(pooled))
    bias = np.full(num_classes, -50.0, np.float32)
    bias[voted] = 50.0
    dense.set_weights([np.zeros((3, num_classes), np.float32), bias])
    return model


def test_algorithm2_with_zero_evidence_weights_is_the_conventional_top1():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(6), size=20)
    top = np.argsort(-probabilities, axis=1)[:, :3]
    scores = rng.random((20, 3, 3))
    refined, _ = gz.refine_decision(probabilities, top, scores, (1.0, 0.0, 0.0, 0.0))
    np.testing.assert_array_equal(refined, probabilities.argmax(1))


def test_algorithm2_follows_an_evidence_cnn_that_always_votes_t_only_inside_the_top_k():
    probabilities = np.array([[0.5, 0.3, 0.15, 0.05], [0.5, 0.3, 0.15, 0.05]])
    top = np.array([[0, 1, 2], [0, 1, 3]])
    voted = 2
    scores = (top == voted).astype(float)[:, :, None]  # the voter gives t probability 1 on t's patch, 0 on the others'
    refined, totals = gz.refine_decision(probabilities, top, scores, (0.4, 5.0))
    assert refined[0] == voted  # t in the top-k: chosen with a large w_0
    assert refined[1] == 0  # t outside the top-k is never chosen
    np.testing.assert_allclose(totals[0], [0.2, 0.12, 0.06 + 5.0])
    # the same through a Refiner with a real (constant) Evidence CNN on a toy conventional model
    model = _brightness_model(8, num_classes=4)
    images = np.full((3, 8, 8, 3), 0.3, np.float32)
    for top_k, expected in ((3, voted), (1, 2)):  # conventional top-1 is class 2 for bright images
        refiner = gz.Refiner(model, _constant_evidence_model(4, 4, voted), weights=(0.4, 100.0), methods=("rise",), rounds=0,
                             top_k=top_k, patch_fraction=0.5, saliency_options={"rise": {"num_masks": 8, "grid_size": 2}})
        assert (refiner.refine(images).refined == expected).all()
    dark = np.full((2, 8, 8, 3), -0.3, np.float32)  # conventional: class 0 first, then 1; 3 is last of the four
    refiner = gz.Refiner(model, _constant_evidence_model(4, 4, 3), weights=(0.4, 100.0), methods=("rise",), rounds=0,
                         top_k=2, patch_fraction=0.5, saliency_options={"rise": {"num_masks": 8, "grid_size": 2}})
    result = refiner.refine(dark)
    assert 3 not in result.top_classes and (result.refined == result.conventional).all()


def test_weights_are_chosen_on_the_validation_split_with_ties_towards_the_thesis():
    assert len(gz.weight_grid(2)) == 286  # 4 weights in tenths summing to 1
    probabilities = np.array([[0.6, 0.4], [0.6, 0.4]])
    top = np.array([[0, 1], [0, 1]])
    scores = np.array([[[0.0], [1.0]], [[0.0], [1.0]]])
    weights, accuracy = gz.choose_weights(probabilities, top, scores, np.array([1, 1]), rounds=0)
    assert accuracy == 1.0 and weights[1] > weights[0] * 0.2  # the evidence must outweigh a 0.2 probability gap
    weights, accuracy = gz.choose_weights(probabilities, top, scores, np.array([0, 0]), rounds=0)
    # right when 0.6 w > 0.4 w + w_0, i.e. w_0 < w / 5: (1, 0) and (0.9, 0.1) tie; (0.9, 0.1) is closer to the thesis's 4:3
    assert accuracy == 1.0 and weights == pytest.approx((0.9, 0.1))
    np.testing.assert_allclose(gz.thesis_weights(2), gz.THESIS_WEIGHTS)


def test_ensemble_pool_is_the_union_of_the_per_method_pools():
    model = mindgap.build_model("Tiny-GAP1", 3, input_shape=(16, 16, 3))
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (6, 24, 24, 3)).astype(np.float32)  # larger than the input: patches cut at 24 px
    labels = gz.predict(model, images).argmax(-1)  # every image correct, so every method contributes every image
    options = {"rise": {"num_masks": 16}}
    ensemble = gz.ensemble_pool(model, images, labels, saliency_options=options)
    singles = [gz.evidence_pool(model, images, labels, method, rounds=0, saliency_options=options.get(method))
               for method in gz.ENSEMBLE_METHODS]
    assert len(ensemble) == sum(len(pool) for pool in singles) == 4 * len(images)
    np.testing.assert_array_equal(ensemble.patches, np.concatenate([pool.patches for pool in singles]))
    assert ensemble.patches.shape[1:] == (8, 8, 3)  # round(0.335 * 24)
    assert ensemble.counts() == {(method, 0): len(images) for method in gz.ENSEMBLE_METHODS}
    with pytest.raises(ValueError, match="grounding method"):
        gz.evidence_pool(model, images, labels, method="lime")


def test_bad_input_gets_one_line_naming_the_fix():
    model = _brightness_model(8)
    with pytest.raises(ValueError, match=r"weights were given for L = 2"):
        gz.Refiner(model, _constant_evidence_model(4, 3, 0), weights=(0.5, 0.5))
    with pytest.raises(ValueError, match="top_k must be"):
        gz.Refiner(model, _constant_evidence_model(4, 3, 0), weights=(0.5, 0.5), rounds=0, top_k=7)
    with pytest.raises(ValueError, match="Evidence CNN has 4 classes"):
        gz.Refiner(model, _constant_evidence_model(4, 4, 0), weights=(0.5, 0.5), rounds=0)
    with pytest.raises(ValueError, match=r"images must be a batch"):
        gz.evidence_pool(model, np.zeros((8, 8, 3)), [0])
    with pytest.raises(ValueError, match="holds no manifest.json"):
        gz.Refiner.load("/nonexistent-refiner")


def test_refiner_trained_through_train_saves_and_loads_in_a_fresh_process(tmp_path):
    from mindgap.data.digits import generate_digits_dataset
    from mindgap.data import load_dataset

    data = generate_digits_dataset(tmp_path / "data", train_per_class=2, test_per_class=2, canvas_size=32, digit_size=(12, 16),
                                   backgrounds="skimage", clutter=1)
    dataset, _ = load_dataset(data, test_per_class=1)
    model = mindgap.build_model("Tiny-GAP1", 10, input_shape=(16, 16, 3), class_names=list(dataset.class_names))
    from mindgap.data.pipeline import load_image

    images = np.stack([load_image(record.path, 32)[0] for record in dataset.train])
    labels = gz.predict(model, images).argmax(-1)  # pretend the untrained model is right: every image enters the pool
    pool = gz.evidence_pool(model, images, labels, "cam", rounds=1)
    assert set(pool.rounds.tolist()) <= {0, 1} and len(pool) >= len(images)
    result = gz.train_evidence_cnn(pool, pool.select(pool.rounds == 0), tmp_path / "evidence", dataset.class_names,
                                   model_name="Tiny-GAP1", image_size=16, epochs=1, freeze_epochs=0, batch_size=8,
                                   localization_images=0, snapshot_images=0, tensorboard=False, precise_bn_batches=0, verbose=0)
    assert (tmp_path / "evidence" / "run" / "best.keras").is_file()
    assert sorted(p.name for p in (tmp_path / "evidence" / "pool").iterdir())[0] == "000_zero"
    refiner = gz.Refiner(model, result.best_model(), weights=(0.4, 0.3, 0.2), methods=("cam",), rounds=1, top_k=3,
                         source_size=32)
    expected = refiner.refine(images[:3])
    refiner.save(tmp_path / "refiner", validation_accuracy=0.5)
    manifest = json.loads((tmp_path / "refiner" / "manifest.json").read_text())
    assert manifest["weights"] == [0.4, 0.3, 0.2] and manifest["validation_accuracy"] == 0.5
    np.save(tmp_path / "images.npy", images[:3])
    code = ("import sys, numpy as np; from mindgap import guided_zoom as gz; r = gz.Refiner.load(sys.argv[1]); "
            "out = r.refine(np.load(sys.argv[2])); print(out.refined.tolist(), out.top_classes.tolist())")
    printed = subprocess.run([sys.executable, "-c", code, str(tmp_path / "refiner"), str(tmp_path / "images.npy")],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    assert printed == f"{expected.refined.tolist()} {expected.top_classes.tolist()}"


def test_cli_explain_with_a_refiner_prints_both_rankings_and_writes_the_patches(tmp_path, capsys):
    from mindgap.cli import main
    from mindgap.data.digits import generate_digits_dataset

    names = ["cat", "dog", "owl", "yak"]
    model = mindgap.build_model("Tiny-GAP1", 4, input_shape=(16, 16, 3), class_names=names)
    evidence = mindgap.build_model("Tiny-GAP1", 4, input_shape=(16, 16, 3))
    gz.Refiner(model, evidence, weights=(0.5, 0.3, 0.2), methods=("cam",), rounds=1, top_k=3, source_size=32).save(
        tmp_path / "refiner")
    images = generate_digits_dataset(tmp_path / "d", train_per_class=1, test_per_class=1, canvas_size=40, digit_size=(10, 20))
    image = images + "/JPEGImages/three_001.jpg"
    assert main(["explain", image, "--refiner", str(tmp_path / "refiner"), "--out", str(tmp_path / "out")]) == 0
    conventional, refined = capsys.readouterr().out.strip().splitlines()
    assert conventional.startswith(f"{image}: conventional: ") and conventional.count(",") == 2
    assert refined.startswith(f"{image}: refined: ") and refined.count(",") == 2
    written = tmp_path / "out" / "three_001.jpg_guided_zoom.png"
    assert keras.utils.img_to_array(keras.utils.load_img(written)).std() > 1.0
    for arguments, message in (([], "pass either --model"), (["--refiner", str(tmp_path / "nowhere")], "does not exist"),
                               (["--refiner", str(tmp_path / "out")], "holds no manifest.json"),
                               (["--refiner", str(tmp_path / "refiner"), "--method", "rise"], "--class and --method")):
        assert main(["explain", image, *arguments, "--out", str(tmp_path / "x")]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and message in error


def test_the_thesis_fixed_weights_score_by_hand():
    """Algorithm 2 with w = 0.4, w_0 = 0.3, w_1 = 0.2, w_2 = 0.1 (§6.2), k = 2, L = 2, computed by hand:
    class 0: 0.4 · 0.5 + 0.3 · 0.1 + 0.2 · 0.2 + 0.1 · 0.3 = 0.30; class 1: 0.4 · 0.3 + 0.3 · 0.9 + 0.2 · 0.8 + 0.1 · 0.7 = 0.62.
    The conventional CNN's top class 0 loses to the evidence of class 1; with (0.4, 0.3) only (L = 0): 0.23 against 0.39."""
    probabilities = np.array([[0.5, 0.3, 0.2]])
    top = np.array([[0, 1]])
    scores = np.array([[[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]]])
    refined, totals = gz.refine_decision(probabilities, top, scores, gz.thesis_weights(2))
    np.testing.assert_allclose(totals, [[0.30, 0.62]])
    assert refined.tolist() == [1]
    refined, totals = gz.refine_decision(probabilities, top, scores, gz.thesis_weights(0))
    np.testing.assert_allclose(totals * 0.7, [[0.23, 0.39]])  # (0.4, 0.3) renormalised to sum 1: the same argmax
    assert refined.tolist() == [1]
    # the evidence can also confirm the conventional CNN: class 0's patches score high
    refined, _ = gz.refine_decision(probabilities, top, np.array([[[0.9, 0.9, 0.9], [0.2, 0.2, 0.2]]]), gz.THESIS_WEIGHTS)
    assert refined.tolist() == [0]
