"""Spatiotemporal grounding (thesis ch. 7, issue 22): the video set, the CNN-LSTM, EB-R / cEB-R, localization."""

import json
import os

import numpy as np
import pytest

from mindgap.data import video
from mindgap.data.records import DatasetError

TINY_SET = dict(frame_size=32, short_frames=4, long_frames=8, digit_size=(10, 20), train_per_class=1, val_per_class=1,
                test_per_class=1, untrimmed_per_class=1)


@pytest.fixture(scope="module")
def video_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("video") / "set"
    video.generate_video_set(root, **TINY_SET)
    return video.load_video_set(root, cache_path=None)


# ---------------------------------------------------------------- the set

def test_scaled_lengths_keep_the_thesis_proportion():
    assert video.scaled_lengths(128) == (11, 41, 65)
    assert video.scaled_lengths(32) == (3, 10, 16)
    assert video.scaled_lengths(8) == (1, 3, 4)


def test_generator_writes_every_split_with_its_segments(video_set):
    assert set(video_set.splits) == set(video.SPLITS)
    for name in ("train", "val", "test"):
        for clip in video_set.split(name):
            assert clip.num_frames == 4 and clip.segment == (0, 4) and (clip.frame_labels == clip.label).all()
    for clip in video_set.split("gt_rand"):
        assert clip.segment == (0, 2)
    for clip in video_set.split("rand_gt"):
        assert clip.segment == (2, 4)
    lengths = sorted({clip.gt_length for clip in video_set.split("rand_gt_rand")})
    assert lengths == [1, 3, 4]
    for name in ("gt_rand", "rand_gt", "rand_gt_rand"):
        for clip in video_set.split(name):
            inside = np.zeros(clip.num_frames, bool)
            inside[clip.segment[0]:clip.segment[1]] = True
            # the segment is where the GT digit is drawn, and only there
            assert (clip.frame_labels[inside] == clip.label).all()
            assert (clip.frame_labels[~inside] != clip.label).all()


def test_boxes_are_the_ink_of_the_digit_in_every_frame(monkeypatch, tmp_path):
    from mindgap.data import digits

    inks = []
    original = digits.render_canvas

    def recording(*args, **kwargs):
        canvas, ink, box = original(*args, **kwargs)
        inks.append(ink)
        return canvas, ink, box

    monkeypatch.setattr(digits, "render_canvas", recording)
    video.generate_video_set(tmp_path / "set", **{**TINY_SET, "train_per_class": 1})
    dataset = video.read_video_set(tmp_path / "set")
    boxes = [box for name in video.SPLITS for clip in dataset.split(name) for box in clip.boxes]
    assert len(boxes) == len(inks)
    for box, ink in zip(boxes, inks):
        rows = np.flatnonzero((ink > digits.INK_THRESHOLD).any(axis=1))
        columns = np.flatnonzero((ink > digits.INK_THRESHOLD).any(axis=0))
        assert tuple(box) == (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1)
    # and the pixels: inside the box the frame differs from the frame's surroundings (the digit is drawn there)
    clip = dataset.split("train")[0]
    frames = video.load_clip_frames(clip).astype(np.float32)
    assert frames.shape == (4, 32, 32, 3)


def test_the_digit_moves_over_the_clip(video_set):
    moved = [np.abs(clip.boxes[-1] - clip.boxes[0]).max() for clip in video_set.split("train")]
    assert np.mean(moved) > 0


def test_generator_is_deterministic(tmp_path):
    settings = {**TINY_SET, "untrimmed_per_class": 1}
    video.generate_video_set(tmp_path / "a", **settings)
    video.generate_video_set(tmp_path / "b", **settings)
    first = video.read_video_set(tmp_path / "a").split("rand_gt_rand")[3]
    second = video.read_video_set(tmp_path / "b").split("rand_gt_rand")[3]
    assert first.segment == second.segment and np.array_equal(first.boxes, second.boxes)
    assert np.array_equal(video.load_clip_frames(first), video.load_clip_frames(second))


def test_bad_settings_and_bad_clips_give_one_line_errors(tmp_path, video_set):
    with pytest.raises(ValueError, match="gt_lengths"):
        video.resolve_settings(long_frames=8, gt_lengths=(9,))
    with pytest.raises(ValueError, match="Unknown video set setting"):
        video.resolve_settings(frames=3)
    with pytest.raises(DatasetError, match="not a video set"):
        video.read_video_set(tmp_path)
    # a box outside its frame is found by the check, before training
    clip = video_set.split("test")[0]
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(video_set.root, copy)
    record_path = copy / video.CLIPS_DIR / clip.name / video.CLIP_FILE
    record = json.loads(record_path.read_text())
    record["boxes"][1] = [0, 0, 60, 10]
    record_path.write_text(json.dumps(record))
    with pytest.raises(DatasetError, match=f"{clip.name} frame 1: outside") as error:
        video.load_video_set(copy, cache_path=None)
    assert "\n" not in str(error.value)
    record["segment"] = [3, 9]
    record_path.write_text(json.dumps(record))
    with pytest.raises(DatasetError, match="segment"):
        video.read_video_set(copy)


# ---------------------------------------------------------------- the CNN-LSTM and EB-R

def _cnn_lstm(seed=0, fc_units=16, lstm_units=8, num_classes=3):
    import keras

    from mindgap import build_model

    keras.utils.set_random_seed(seed)
    return build_model("Tiny-LSTM", num_classes, input_shape=(32, 32, 3), fc_units=fc_units, lstm_units=lstm_units)


def _clips(count, steps, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, steps, 32, 32, 3)).astype(np.float32)


def _sigmoid(value):
    return 1 / (1 + np.exp(-value))


def test_registry_builds_the_cnn_lstm_and_the_frame_cnn(tmp_path):
    import keras

    from mindgap import build_model, list_models, load_model, recurrent

    assert {"Tiny-LSTM", "Tiny-LSTM-tanh", "Tiny-Frames"} <= set(list_models())
    model = _cnn_lstm()
    clips = _clips(2, 5)
    assert model(clips).shape == (2, 5, 3)  # a class output at every step, any T
    assert model(clips[:, :2]).shape == (2, 2, 3)
    assert recurrent.lstm_activation(model) == "relu"
    assert recurrent.lstm_activation(build_model("Tiny-LSTM-tanh", 3, input_shape=(32, 32, 3), fc_units=4,
                                                 lstm_units=2)) == "tanh"
    model.save(tmp_path / "video.keras")
    np.testing.assert_allclose(load_model(tmp_path / "video.keras")(clips), model(clips), atol=1e-6)
    frames = build_model("Tiny-Frames", 3, input_shape=(32, 32, 3), fc_units=16)
    frames.save(tmp_path / "frames.keras")
    started = build_model("Tiny-LSTM", 3, input_shape=(32, 32, 3), fc_units=16, lstm_units=8, weights=tmp_path / "frames.keras")
    for name in ("fc1", "fc2"):
        np.testing.assert_array_equal(started.get_layer(name).get_weights()[0], frames.get_layer(name).get_weights()[0])
    with pytest.raises(ValueError, match="does not fit this CNN-LSTM"):
        build_model("Tiny-LSTM", 3, input_shape=(32, 32, 3), fc_units=5, lstm_units=8, weights=tmp_path / "frames.keras")
    # the LSTM written out is Keras' LSTM
    from mindgap.saliency.recurrent import lstm_states

    features = recurrent.frame_encoder(model)(clips.reshape(-1, 32, 32, 3)).numpy().reshape(2, 5, -1)
    states = lstm_states(model.get_layer("lstm"), features)
    np.testing.assert_allclose(states["h"].numpy(), model.get_layer("lstm")(features).numpy(), atol=1e-6)
    del keras


def test_eb_r_on_one_step_equals_its_closed_form():
    """Conserving rule, T = 1: c = i g, h = o i g; s_j = o_j i_j g_j V+_jA / sum_k (...);
    P(x_d) = x_d sum_j W+_dj s_j / (x . W+_:j)."""
    from mindgap import recurrent
    from mindgap.saliency.recurrent import input_winning_probabilities

    model = _cnn_lstm(seed=1)
    clips = _clips(2, 1, seed=1)
    features = recurrent.frame_encoder(model)(clips[:, 0]).numpy()  # (2, D)
    lstm = model.get_layer("lstm").cell
    kernel, bias = np.asarray(lstm.kernel), np.asarray(lstm.bias)
    units = lstm.units
    z = features @ kernel + bias
    i, o = _sigmoid(z[:, :units]), _sigmoid(z[:, 3 * units:])
    g = np.maximum(z[:, 2 * units:3 * units], 0)
    w_plus = np.maximum(kernel[:, 2 * units:3 * units], 0)
    classifier = np.asarray(model.get_layer("logits").kernel)

    def divide(numerator, denominator):
        return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)

    def closed_form(v_plus, label):
        s = o * i * g * v_plus[:, label]
        s = divide(s, s.sum(axis=1, keepdims=True))
        p = features * (divide(s, features @ w_plus) @ w_plus.T)
        return divide(p, p.sum(axis=1, keepdims=True))  # eq. 7.5 (T = 1)

    for label in range(3):
        eb = input_winning_probabilities(model, clips, np.full((2, 1), label), rule="conserving")[:, 0, :, 0]
        np.testing.assert_allclose(eb.sum(axis=1), 1.0, rtol=1e-5)  # not a degenerate (all-zero) case
        np.testing.assert_allclose(eb, closed_form(np.maximum(classifier, 0), label), rtol=1e-4, atol=1e-7)
        ceb = input_winning_probabilities(model, clips, np.full((2, 1), label), contrastive=True,
                                          rule="conserving")[:, 0, :, 0]
        expected = closed_form(np.maximum(classifier, 0), label) - closed_form(np.maximum(-classifier, 0), label)
        np.testing.assert_allclose(ceb, expected, rtol=1e-4, atol=1e-7)  # eq. 7.7


def test_authors_eb_r_on_one_step_equals_its_closed_form():
    """The authors' rule (Caffe's LSTMUnit gradient kernels, then EB of the input InnerProduct), T = 1, by hand:
    s = P(h) = h V+_A / (h . V+_A); the gate signals d_i = s o g i(1-i), d_f = 0 (c_prev = 0), d_o = s c o(1-o),
    d_g = s o i [g > 0] (Keras' order i, f, g, o) go to x by P(x_d) = x_d sum_j W+_dj d_j / (x . W+_:j), W the
    whole input kernel; eq. 7.5 then normalises."""
    from mindgap import recurrent
    from mindgap.saliency.recurrent import input_winning_probabilities

    model = _cnn_lstm(seed=1)
    clips = _clips(2, 1, seed=1)
    features = recurrent.frame_encoder(model)(clips[:, 0]).numpy()
    lstm = model.get_layer("lstm").cell
    kernel, bias, units = np.asarray(lstm.kernel), np.asarray(lstm.bias), lstm.units
    z = features @ kernel + bias
    i, f, o = _sigmoid(z[:, :units]), _sigmoid(z[:, units:2 * units]), _sigmoid(z[:, 3 * units:])
    g = np.maximum(z[:, 2 * units:3 * units], 0)
    c = i * g
    h = o * np.maximum(c, 0)
    w_plus = np.maximum(kernel, 0)
    classifier = np.asarray(model.get_layer("logits").kernel)

    def divide(numerator, denominator):
        return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)

    def closed_form(v_plus, label):
        s = divide(h * v_plus[:, label], (h * v_plus[:, label]).sum(axis=1, keepdims=True))
        term = s * o * (c > 0)
        signals = np.concatenate([term * g * i * (1 - i), np.zeros_like(f), term * i * (g > 0), s * c * o * (1 - o)], axis=1)
        p = features * (divide(signals, features @ w_plus) @ w_plus.T)
        return divide(p, p.sum(axis=1, keepdims=True))

    for label in range(3):
        eb = input_winning_probabilities(model, clips, np.full((2, 1), label))[:, 0, :, 0]  # the default rule
        np.testing.assert_allclose(eb.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(eb, closed_form(np.maximum(classifier, 0), label), rtol=1e-4, atol=1e-7)
        ceb = input_winning_probabilities(model, clips, np.full((2, 1), label), contrastive=True, rule="authors")
        expected = closed_form(np.maximum(classifier, 0), label) - closed_form(np.maximum(-classifier, 0), label)
        np.testing.assert_allclose(ceb[:, 0, :, 0], expected, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="Unknown EB-R rule"):
        input_winning_probabilities(model, clips, np.full((2, 1), 0), rule="gradient")


def _saturate(model, scale=3.0, shift=0.5):
    """The issue's saturated random Tiny-LSTM: both LSTM kernels times ``scale``, its biases plus ``shift``."""
    lstm = model.get_layer("lstm").cell
    lstm.kernel.assign(np.asarray(lstm.kernel) * scale)
    lstm.recurrent_kernel.assign(np.asarray(lstm.recurrent_kernel) * scale)
    lstm.bias.assign(np.asarray(lstm.bias) + shift)
    return model


def frame_zero_share(model, clips, classes, rule):
    """The share of the EB-R mass (eq. 7.5, at the LSTM's input) on the first frame, last step queried, per clip."""
    from mindgap.saliency.recurrent import input_winning_probabilities

    mwp = input_winning_probabilities(model, clips, classes, rule=rule)[..., 0]  # (batch, T, D)
    return mwp[:, 0].sum(axis=-1) / mwp.sum(axis=(1, 2))


def test_on_a_saturated_lstm_the_conserving_rule_sinks_into_the_first_frame_and_the_authors_rule_does_not():
    """h_{-1} = 0 and f near 1 make frame 0 a sink for the conserving rule (issue 28: 85-92 %); the authors' rule,
    where time flows through the cell alone and the gate signals are gradients, keeps most mass late."""
    shares = {"authors": [], "conserving": []}
    for seed in range(2):
        model = _saturate(_cnn_lstm(seed=seed))
        clips = _clips(3, 8, seed=seed)
        classes = np.argmax(model.predict(clips, verbose=0)[:, -1], axis=-1)[:, None]
        for rule in shares:
            shares[rule].append(frame_zero_share(model, clips, classes, rule))
    authors, conserving = (np.concatenate(shares[rule]) for rule in ("authors", "conserving"))
    assert conserving.mean() > 0.5 and authors.mean() < conserving.mean() - 0.2, (authors, conserving)


def test_eb_r_sums_to_one_over_space_and_time_and_ceb_r_is_the_difference():
    import mindgap

    model = _cnn_lstm(seed=2)
    clips = _clips(2, 6, seed=2)
    classes = np.array([[0, 1], [2, 1]])
    eb = mindgap.saliency.compute(model, clips, classes, method="eb_r")
    ceb = mindgap.saliency.compute(model, clips, classes, method="ceb_r")
    assert eb.shape == ceb.shape == (2, 6, 4, 4, 2)
    assert (eb >= 0).all()
    np.testing.assert_allclose(eb.sum(axis=(1, 2, 3)), 1.0, rtol=1e-4)  # eq. 7.5, down at the CNN's output
    dual = eb - ceb  # EB is linear in its prior: the dual's map, taken down the same CNN
    assert (dual >= -1e-6).all()
    # eq. 7.6: a distribution too, unless no hidden unit excites the dual (then it passes nothing)
    totals = dual.sum(axis=(1, 2, 3))
    assert np.isclose(totals, 1.0, rtol=1e-4).sum() >= 2 and (np.isclose(totals, 1.0, rtol=1e-4) | (totals == 0)).all()
    # an earlier step sees only the frames up to it
    early = mindgap.saliency.compute(model, clips, classes, method="eb_r", step=2)
    assert np.abs(early[:, 3:]).max() == 0
    np.testing.assert_allclose(early.sum(axis=(1, 2, 3)), 1.0, rtol=1e-4)


@pytest.mark.parametrize("rule", ["authors", "conserving"])
def test_identical_frames_and_a_time_invariant_lstm_give_the_same_map_at_every_step(rule):
    """Gates constant (kernels 0, biases 0: i = f = o = 1/2), no recurrent weights: every frame gets the same map,
    scaled by f^(n - t) (the share the cell passes back), so the temporal sums are 1/2, 1/4, ... normalised.
    Both rules: conserving, P(c_{t-1}) = P(c_t) f c_{t-1} / c_t and all of P(g_t) goes to x_t (U = 0), so frame t
    gets f^(n-t) i g / c_n; authors', C_prev_diff = c_term f and only the g signal reaches x (the i, f, o columns of
    the kernel are 0, so x W+ = 0 there and EB passes nothing), c_term_t i = s o i f^(n-t)."""
    import mindgap

    model = _cnn_lstm(seed=3)
    lstm = model.get_layer("lstm").cell
    units = lstm.units
    kernel = np.asarray(lstm.kernel).copy()
    kernel[:, :2 * units] = 0
    kernel[:, 3 * units:] = 0
    lstm.kernel.assign(kernel)
    lstm.recurrent_kernel.assign(np.zeros_like(np.asarray(lstm.recurrent_kernel)))
    lstm.bias.assign(np.zeros_like(np.asarray(lstm.bias)))
    frame = _clips(1, 1, seed=3)
    clips = np.repeat(frame, 5, axis=1)
    maps = mindgap.saliency.compute(model, clips, [[1]], method="eb_r", rule=rule)[0, ..., 0]
    sums = maps.sum(axis=(1, 2))
    np.testing.assert_allclose(sums, 0.5 ** np.arange(4, -1, -1) / (0.5 ** np.arange(5)).sum(), rtol=1e-4)
    for step in range(5):
        np.testing.assert_allclose(maps[step] / sums[step], maps[-1] / sums[-1], rtol=1e-4, atol=1e-7)


def test_per_frame_and_gradient_baselines_on_clips():
    import mindgap

    frames = mindgap.build_model("Tiny-Frames", 3, input_shape=(32, 32, 3), fc_units=6)
    clips = _clips(2, 3, seed=4)
    eb = mindgap.saliency.compute(frames, clips, [[0], [1]], method="eb")
    assert eb.shape == (2, 3, 4, 4, 1)
    single = mindgap.saliency.compute(frames, clips[1], [1], method="eb")  # frames as independent images
    np.testing.assert_allclose(eb[1], single, rtol=1e-5, atol=1e-8)
    assert mindgap.saliency.compute(frames, clips, [0], method="bp").shape == (2, 3, 32, 32, 1)
    model = _cnn_lstm(seed=4)
    bp_r = mindgap.saliency.compute(model, clips, [2], method="bp_r")
    assert bp_r.shape == (2, 3, 32, 32, 1) and (bp_r >= 0).all()
    with pytest.raises(ValueError, match="use eb_r"):
        mindgap.saliency.compute(model, clips, [0], method="eb")
    with pytest.raises(ValueError, match="ReLU"):
        tanh = mindgap.build_model("Tiny-LSTM-tanh", 3, input_shape=(32, 32, 3), fc_units=4, lstm_units=2)
        mindgap.saliency.compute(tanh, clips, [0], method="ceb_r")
    with pytest.raises(ValueError, match="outside a clip of 3 frames"):
        mindgap.saliency.compute(model, clips, [0], method="eb_r", step=3)


# ---------------------------------------------------------------- temporal localization and its measures

def test_unknown_length_grows_from_the_anchor_until_a_negative_sum():
    from mindgap.temporal import localize_unknown_length

    scores = [-0.2, 0.1, 0.0, 0.5, 0.9, 0.3, -0.1, 0.8]
    # anchor 4 (0.9); left: 0.5, 0.0 (zero does not stop), 0.1, then -0.2 stops; right: 0.3, then -0.1 stops
    assert localize_unknown_length(scores) == (1, 6)
    assert localize_unknown_length([0.2, 0.1]) == (0, 2)  # nothing negative: the whole clip
    assert localize_unknown_length([-1.0, -0.5, -2.0]) == (1, 2)  # all negative: the anchor alone
    assert localize_unknown_length([1.0, -1.0, 1.0]) == (0, 1)  # ties: the first anchor


def test_known_length_takes_the_window_with_the_highest_sum():
    from mindgap.temporal import localize_known_length, thresholded_probabilities

    scores = [0.0, 3.0, -1.0, 2.0, 2.0, -5.0]
    assert localize_known_length(scores, 1) == (1, 2)
    assert localize_known_length(scores, 2) == (3, 5)  # 4 beats 3 - 1 = 2
    assert localize_known_length(scores, 3) == (1, 4)  # 4 ties with (2, 5): 3; (1, 4) = 4 and (3, 6) = -1
    assert localize_known_length(scores, 6) == (0, 6)
    with pytest.raises(ValueError, match="length must be in"):
        localize_known_length(scores, 7)
    np.testing.assert_array_equal(thresholded_probabilities([0.2, 0.5, 0.9]), [-1, 1, 1])


def test_temporal_map_at_iou_half_on_toy_detections():
    from mindgap.metrics import segment_iou, temporal_average_precision, temporal_mean_ap, temporal_pointing_hit

    assert segment_iou((0, 4), (2, 6)) == pytest.approx(2 / 6)
    assert segment_iou((0, 4), (0, 4)) == 1.0
    # class 0: three clips; detections by score: a (hit, IoU 3/5), b (miss, IoU 1/7), c (hit, IoU 1)
    ground_truth = [("a", 0, 2, 6), ("b", 0, 0, 4), ("c", 0, 5, 8)]
    detections = [("a", 0, 3, 6, 0.9), ("b", 0, 3, 7, 0.8), ("c", 0, 5, 8, 0.7)]
    # precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3 → monotone precision 1, 2/3, 2/3 → AP = 1/3 + 1/3 · 2/3
    ap = temporal_average_precision([(clip, start, end, score) for clip, _, start, end, score in detections],
                                    [(clip, start, end) for clip, _, start, end in ground_truth])
    assert ap == pytest.approx(1 / 3 + 2 / 9)
    # class 1: one clip, one hit → AP 1; a duplicate detection of the same GT is a false positive after it
    ground_truth += [("d", 1, 0, 2)]
    detections += [("d", 1, 0, 2, 0.5), ("d", 1, 0, 2, 0.4)]
    assert temporal_mean_ap(detections, ground_truth) == pytest.approx(((1 / 3 + 2 / 9) + 1.0) / 2)
    assert temporal_average_precision([("d", 0, 1, 0.1)], [("d", 0, 2)]) == 1.0  # IoU exactly 1/2 counts (>=)
    assert temporal_average_precision([("d", 0, 1, 0.1)], [("d", 0, 3)]) == 0.0  # IoU 1/3
    assert temporal_pointing_hit([0.1, 0.5, 0.2, 0.5], (1, 3)) and not temporal_pointing_hit([0.1, 0.5, 0.9], (0, 2))


def test_every_training_batch_holds_exactly_half_frames_and_half_images():
    """§3.5.1.1: "Equal numbers of web images and video frames are sampled in each training batch", in every batch."""
    from experiments.spatiotemporal import training_batches

    frames, images = np.zeros((10, 4, 4, 3), np.uint8), np.full((3, 4, 4, 3), 255, np.uint8)  # -1 and +1 once scaled
    data = training_batches(frames, np.arange(10) % 3, images, np.arange(3), 3, 6, seed=0, with_domain=True)
    batches = list(data.take(25))  # more batches than either stream holds: the counts survive their repeats
    for pixels, targets, domain in batches:
        domain, pixels = domain.numpy(), pixels.numpy()
        assert (domain == 0).sum() == 3 and (domain == 1).sum() == 3
        assert (pixels[domain == 0] == -1).all() and (pixels[domain == 1] == 1).all()  # the flag is where each came from
        assert targets.shape == (6, 3)
    only = list(training_batches(frames, np.arange(10) % 3, None, None, 3, 4, seed=0, with_domain=True).take(5))
    assert all((domain.numpy() == 0).all() and len(domain) == 4 for _, _, domain in only)
    with pytest.raises(ValueError, match="even batch size"):
        training_batches(frames, np.arange(10) % 3, images, np.arange(3), 3, 5, seed=0)


def test_video_classification_by_views_and_voting():
    """§3.5.1.1: 10 views per frame averaged, the frame's class its top score, the video's by voting. A frame that is
    the same everywhere gives the same probabilities in every view; voting takes the most frequent class."""
    import keras

    from experiments.spatiotemporal import view_probabilities, vote

    assert vote(np.array([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]]), 2).tolist() == [1]  # two frames of three say 1
    assert vote(np.array([[[0.9, 0.1], [0.2, 0.8]]]), 2).tolist() == [0]  # a tie: the lower class
    inputs = keras.Input((8, 8, 3))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Dense(2, kernel_initializer="ones")(mean)))
    clips = np.stack([np.full((4, 8, 8, 3), value, np.uint8) for value in (0, 200)])  # (2 clips, 4 frames)
    views = view_probabilities(model, clips, views=10, frames_per_video=3)
    assert views.shape == (2, 3, 2)  # 3 frames of equal spacing out of 4
    plain = np.asarray(model(clips[:, :1].reshape(-1, 8, 8, 3).astype(np.float32) / 127.5 - 1))
    np.testing.assert_allclose(views[:, 0], plain, rtol=1e-5)
    with pytest.raises(ValueError, match="views must be 5"):
        view_probabilities(model, clips, views=3)


# ---------------------------------------------------------------- the experiment and the command

@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    from experiments import spatiotemporal

    runs = tmp_path_factory.mktemp("runs")
    results = spatiotemporal.main(["--extra-small", "--runs-dir", str(runs), "--no-tanh"])
    return runs, results


def test_experiment_extra_small_writes_its_tables_and_figures(experiment):
    runs, results = experiment
    folder = runs / "spatiotemporal-extra-small"
    table = (folder / "table.md").read_text()
    for heading in ("Table 7.1", "Table 7.2", "Temporal pointing game", "Chapter 3", "conservative filters"):
        assert heading in table
    assert "61.5" in table and "73.5" in table  # the thesis's numbers beside ours
    assert (folder / "figure_7_5.png").stat().st_size > 0 and (folder / "figure_7_6.png").stat().st_size > 0
    assert set(results["spatial"]) == {"eb", "eb_r", "ceb", "ceb_r", "bp", "bp_r", "eb_r:conserving", "ceb_r:conserving",
                                       "centre", "off_centre"}
    assert all(0 <= value <= 1 for name, value in results["spatial"].items() if name != "off_centre")
    assert results["tolerance_px"] == pytest.approx(7.5 * 32 / 240)  # the thesis's 15 px diameter circle, scaled
    assert set(results["frame_zero_share"]) == {"authors", "conserving"}
    assert all(0 < share < 1 for share in results["frame_zero_share"].values())
    assert "EB-R (conserving, ours)" in table and (folder / "figure_7_6_conserving.png").stat().st_size > 0
    for variant in ("video only", "video + images"):  # §3.5.1.1's 10 views, and 5 without flips (ours)
        assert {"frame", "voting", "voting_10_views", "voting_5_views"} <= set(results["accuracy"][variant])
    assert "fc1/fc2 pretrained on 40 source renders" in table
    assert set(results["temporal"]["pointing"]) >= {"ceb_r", "ceb_r:conserving", "probability_ceb_r:conserving"}
    assert results["temporal"]["lengths"] == [1, 3, 4]
    assert (runs / "models").is_dir() and os.path.isfile(os.path.join(results["lstm_run"], "done.json"))  # mindgap.train


def test_explain_video_prints_class_and_segment_and_writes_the_strip(experiment, tmp_path, capsys):
    from mindgap.cli import main

    runs, results = experiment
    config = json.loads((runs / "spatiotemporal-extra-small" / "config.json").read_text())
    clip = video.read_video_set(config["video_dir"]).split("rand_gt")[0]
    model = os.path.join(results["lstm_run"], "best.keras")
    assert main(["explain-video", clip.path, "--model", model, "--method", "ceb_r", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert clip.name in printed and "localized in frames" in printed
    record = json.loads((tmp_path / f"{clip.name.replace('_', '-')}_ceb_r.json").read_text())
    assert len(record["frame_scores"]) == clip.num_frames and os.path.getsize(record["figure"]) > 0
    # bad input: one line naming the problem and the fix, exit 2
    assert main(["explain-video", str(tmp_path / "nope"), "--model", model, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not a folder" in error
    image_model = tmp_path / "frames.keras"
    import mindgap

    mindgap.build_model("Tiny-Frames", 3, input_shape=(32, 32, 3), fc_units=4).save(image_model)
    assert main(["explain-video", clip.path, "--model", str(image_model), "--out", str(tmp_path)]) == 2
    assert "not a CNN-LSTM" in capsys.readouterr().err


def test_thesis_claims_over_seeds_pair_each_seed_and_average_the_lengths():
    from experiments import spatiotemporal

    def seed(eb_r, eb, ceb_r_known):
        spatial = dict.fromkeys(spatiotemporal.SPATIAL_METHODS + ("centre",), 0.5)
        spatial.update(eb_r=eb_r, eb=eb, off_centre=dict.fromkeys(spatiotemporal.SPATIAL_METHODS, 0.25))
        known = {**dict.fromkeys(spatiotemporal.TEMPORAL_METHODS, [0.1, 0.1, 0.1]), "probability": [0.2, 0.2, 0.2],
                 "ceb_r": ceb_r_known}
        unknown = {"probability": [0.1] * 3, "ceb_r": [0.3] * 3, "ceb_r:conserving": [0.3] * 3}
        frames = {"frame": 0.5, "voting": 0.6, "voting_10_views": 0.8}
        return {"spatial": spatial, "temporal": {"lengths": [3, 10, 16], "map": {"known": known, "unknown": unknown},
                                                 "pointing": {**dict.fromkeys(spatiotemporal.POINTING_METHODS, 0.5),
                                                              "probability_ceb_r": 0.7, "probability": 0.6}},
                "accuracy": {"video + images": frames, "video only": frames, "Tiny-LSTM": eb},
                "frame_zero_share": {"authors": 0.1, "conserving": 0.2}}

    per_seed = [seed(0.62, 0.55, [0.3, 0.6, 0.9]), seed(0.64, 0.55, [0.2, 0.5, 0.8]), seed(0.60, 0.55, [0.4, 0.7, 1.0])]
    rows = {row["claim"]: row for row in spatiotemporal.seed_verdicts(per_seed)}
    eb = rows["EB-R points better than EB (Table 7.1: 61.5 vs 55.8)"]
    assert eb["difference"] == pytest.approx(0.07) and eb["verdict"] == "held"
    assert eb["low"] == pytest.approx(0.07 - 4.302653 * 0.02 / 3 ** 0.5, abs=1e-6)  # t(0.975, 2) · sd / √3
    known = rows["cEB-R localizes in time better than the probability, known length (Table 7.2, mean over lengths)"]
    assert known["better_values"] == pytest.approx([0.6, 0.5, 0.7]) and known["verdict"] == "held"
    assert rows["web images raise the frame CNN's video accuracy (Table 3.2: 83.5 vs 77.8, voting over 10 views)"][
        "verdict"] == "cannot tell at this N"  # equal on every seed: a zero difference decides nothing
    # every table over the seeds as mean ± sd (sample sd, ddof 1): EB-R 62, 64, 60 → 62.0 ± 2.0
    summary = "\n".join(spatiotemporal.seed_summary(per_seed))
    assert "| all GT frames | 55.0 ± 0.0 | 62.0 ± 2.0 |" in summary
    assert "| known | 3 | 20.0 ± 0.0 / 8.5 | 10.0 ± 0.0 / 11.3 | 30.0 ± 10.0 / 15.5 |" in summary
    assert "| Tiny-LSTM (last step) | – | 55.0 ± 0.0 | – | 83.3 |" in summary
    assert "filter study" not in summary and "§3.4's start" not in summary  # no second pair in these results
