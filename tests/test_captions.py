"""The captioned set and its grammar, the Flickr30kEntities reader, the captioner, word grounding (thesis §7.3, §7.5)."""

import math
import os

import numpy as np
import pytest

import mindgap
from mindgap import captioning, metrics
from mindgap.data import captions, flickr30k
from mindgap.data.records import DatasetError
from mindgap.saliency import caption as word_saliency

FIXTURE_SENTENCES = (
    "[/EN#18/people A child] in [/EN#19/clothing a pink dress] is climbing up [/EN#20/other a set of stairs] "
    "in [/EN#21/scene an entry way] .\n"
    "[/EN#22/people/other Two men] stand near [/EN#0/notvisual it] .\n")
FIXTURE_XML = (
    "<annotation><filename>1000.jpg</filename><size><width>500</width><height>375</height><depth>3</depth></size>"
    "<object><name>18</name><bndbox><xmin>1</xmin><ymin>11</ymin><xmax>100</xmax><ymax>200</ymax></bndbox></object>"
    "<object><name>19</name><name>18</name><bndbox><xmin>21</xmin><ymin>31</ymin><xmax>60</xmax><ymax>90</ymax></bndbox></object>"
    "<object><name>22</name><bndbox><xmin>200</xmin><ymin>10</ymin><xmax>250</xmax><ymax>300</ymax></bndbox></object>"
    "<object><name>22</name><bndbox><xmin>300</xmin><ymin>20</ymin><xmax>350</xmax><ymax>310</ymax></bndbox></object>"
    "<object><name>21</name><nobndbox>0</nobndbox><scene>1</scene></object>"
    "</annotation>")


# ------------------------------------------------------------------ the grammar and the set

def test_describe_and_parse_are_inverse_and_relations_follow_the_boxes():
    digits = [{"label": 3, "box": (5, 30, 15, 45), "size": "small", "colour": "white"},
              {"label": 7, "box": (40, 28, 52, 46), "size": None, "colour": "black"},
              {"label": 0, "box": (20, 2, 30, 16), "size": "big", "colour": None}]
    words, phrases = captions.describe(digits, [0, 1, 2])
    assert " ".join(words) == "a small white three left of a black seven and a big zero"
    assert phrases == [(0, 4, 0), (6, 3, 1), (10, 3, 2)]
    parsed = captions.parse_caption(words)
    assert [phrase["label"] for phrase in parsed["phrases"]] == [3, 7, 0]
    assert [(phrase["size"], phrase["colour"]) for phrase in parsed["phrases"]] == [("small", "white"), (None, "black"), ("big", None)]
    assert [(phrase["first_word"], phrase["last_word"]) for phrase in parsed["phrases"]] == [(0, 3), (6, 8), (10, 12)]
    assert " ".join(captions.describe(digits, [1, 0])[0]) == "a black seven right of a small white three"
    assert captions.describe(digits, [2, 1])[0][3] == "above" and captions.describe(digits, [0, 2])[0][4] == "below"
    with pytest.raises(ValueError, match="relation"):
        captions.parse_caption("a three near a seven".split())
    line = captions.markup(words, phrases, ["1", "2", "3"])
    assert line.startswith("[/EN#1/digit a small white three] left of [/EN#2/digit a black seven] and [/EN#3/digit")


@pytest.fixture(scope="module")
def caption_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("captions") / "set")
    return captions.generate_captions_set(root, train_images=6, val_images=2, test_images=4)


def test_each_phrase_box_is_its_digits_ink_box_and_each_caption_parses_back(caption_set, monkeypatch):
    dataset = captions.load_captions_set(caption_set)
    assert [len(dataset[split]) for split in ("train", "val", "test")] == [6, 2, 4]
    # draw the set again, recording each digit's ink as the renderer returns it
    drawn = []
    original = captions.render_canvas

    def recording(*args, **kwargs):
        canvas, ink, box = original(*args, **kwargs)
        drawn.append((ink, box))
        return canvas, ink, box

    monkeypatch.setattr(captions, "render_canvas", recording)
    rendered = []
    original_scene = captions.render_captioned_scene
    monkeypatch.setattr(captions, "render_captioned_scene",
                        lambda *args, **kwargs: rendered.append((len(drawn), original_scene(*args, **kwargs))) or rendered[-1][1])
    captions.generate_captions_set(os.path.join(os.path.dirname(caption_set), "again"), train_images=6, val_images=2, test_images=4)
    records = dataset["train"] + dataset["val"] + dataset["test"]
    for record, (first, (_, digits)) in zip(records, rendered):
        for index, digit in enumerate(digits):
            ink = drawn[first + index][0]
            rows, columns = np.flatnonzero((ink > 0.25).any(axis=1)), np.flatnonzero((ink > 0.25).any(axis=0))
            assert digit["box"] == (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1)
        for text in record.captions:
            parsed = captions.parse_caption(text.words)
            for phrase, parsed_phrase in zip(text.phrases, parsed["phrases"]):
                digit = digits[int(phrase.entity) - 1]
                assert parsed_phrase["label"] == digit["label"] and phrase.boxes == (digit["box"],)
                assert (parsed_phrase["size"], parsed_phrase["colour"]) == (digit["size"], digit["colour"])
        assert len(record.captions) == captions.CAPTIONS_PER_IMAGE


def test_bad_settings_give_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown captions setting"):
        captions.resolve_settings(colours=3)
    with pytest.raises(ValueError, match="2 <= min <= max digits <= 3"):
        captions.resolve_settings(digits=(1, 4))
    with pytest.raises(DatasetError, match="not an embedded captioned set"):
        captions.load_captions_set(str(tmp_path))


# ------------------------------------------------------------------ Flickr30kEntities

def test_flickr30k_entities_reader_on_a_fixture(tmp_path):
    for folder in ("Sentences", "Annotations", "flickr30k-images"):
        (tmp_path / folder).mkdir()
    (tmp_path / "Sentences" / "1000.txt").write_text(FIXTURE_SENTENCES)
    (tmp_path / "Annotations" / "1000.xml").write_text(FIXTURE_XML)
    (tmp_path / "flickr30k-images" / "1000.jpg").write_bytes(b"")
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.txt").write_text("1000\n" if split == "test" else "")
    record = flickr30k.read_flickr30k_entities(tmp_path)["test"][0]
    assert record.size == (500, 375) and len(record.captions) == 2
    first, second = record.captions
    assert first.text == "A child in a pink dress is climbing up a set of stairs in an entry way ."
    assert [(phrase.entity, phrase.types, phrase.first_word, " ".join(phrase.words)) for phrase in first.phrases] == [
        ("18", ("people",), 0, "A child"), ("19", ("clothing",), 3, "a pink dress"),
        ("20", ("other",), 9, "a set of stairs"), ("21", ("scene",), 14, "an entry way")]
    # 1-based inclusive → pixel-edge exclusive; an object naming two entities boxes both
    assert first.phrases[0].boxes == ((0, 10, 100, 200), (20, 30, 60, 90))
    assert first.phrases[1].boxes == ((20, 30, 60, 90),)
    assert first.phrases[2].boxes == () and first.phrases[3].boxes == ()  # no object; a scene
    assert second.phrases[0].types == ("people", "other") and len(second.phrases[0].boxes) == 2  # "Two men"
    assert second.phrases[1].entity == "0" and second.phrases[1].boxes == ()
    with pytest.raises(DatasetError, match="not closed"):
        flickr30k.parse_sentence("[/EN#1/people a man is here")


# ------------------------------------------------------------------ the captioner and BLEU

def test_bleu_and_exact_match_by_hand():
    reference = "a small three left of a seven".split()
    assert captioning.bleu([[reference]], [reference]) == pytest.approx(1.0)
    hypothesis = "a small three left of a two".split()  # 6 / 7, 5 / 6, 4 / 5, 3 / 4 n-grams match
    expected = math.exp((math.log(6 / 7) + math.log(5 / 6) + math.log(4 / 5) + math.log(3 / 4)) / 4)
    assert captioning.bleu([[reference]], [hypothesis]) == pytest.approx(expected)
    short = "a small three left of".split()  # all n-grams match; brevity penalty exp(1 - 7 / 5)
    assert captioning.bleu([[reference]], [short]) == pytest.approx(math.exp(1 - 7 / 5))
    # clipping: "a a a a" against "a three": unigram precision 1 / 4, no bigram match → 0
    assert captioning.bleu([["a three".split()]], ["a a a a".split()]) == 0.0
    assert captioning.exact_match([[reference], [reference]], [reference, hypothesis]) == 0.5


VOCABULARY = list(captioning.SPECIALS) + ["a", "three", "seven", "left", "of"]


def _toy_captioner(clips=False, seed=0, size=16):
    import keras

    keras.utils.set_random_seed(seed)
    model = mindgap.build_model("Tiny-Captioner-Clips" if clips else "Tiny-Captioner", len(VOCABULARY),
                                input_shape=(size, size, 3), class_names=VOCABULARY, fc_units=8, embedding_units=4,
                                lstm_units=6)
    for layer in model.layers:  # biases away from 0 so that gates and ReLUs are not all at their defaults
        if layer.name in ("lstm1", "lstm2"):
            layer.cell.bias.assign(np.random.default_rng(seed).normal(0, 0.3, layer.cell.bias.shape))
    return model


def test_registry_builds_the_captioner_and_it_round_trips_as_keras(tmp_path):
    model = _toy_captioner()
    assert "Tiny-Captioner" in mindgap.list_models() and captioning.vocabulary_of(model) == VOCABULARY
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    words = np.array([[captioning.START, 4, 5], [captioning.START, 4, 6]], np.int32)
    path = str(tmp_path / "captioner.keras")
    model.save(path)
    loaded = mindgap.load_model(path)
    np.testing.assert_allclose(loaded.predict([images, words], verbose=0), model.predict([images, words], verbose=0), atol=1e-6)
    # greedy decoding takes the arg-max word at every step
    probabilities = model.predict([images[:1], np.array([[captioning.START]])], verbose=0)
    first = captioning.greedy_captions(model, images[:1], max_words=1)[0]
    expected = VOCABULARY[int(probabilities[0, 0].argmax())]
    assert first[:1] == ([] if expected in ("<end>", "<pad>") else [expected])
    with pytest.raises(ValueError, match="vocabulary as class_names"):
        mindgap.build_model("Tiny-Captioner", 5, input_shape=(16, 16, 3))


def test_trained_captioner_reuses_a_run_of_the_same_settings_and_trains_otherwise(tmp_path, monkeypatch):
    import dataclasses
    import json

    from mindgap.training import captioner

    model, config = _toy_captioner(), captioner.CaptionerConfig(epochs=1, fc_units=8, embedding_units=4, lstm_units=6)
    model.save(str(tmp_path / captioner.MODEL_FILE))
    record = {"model": "Tiny-Captioner", **dataclasses.asdict(config), "vocabulary": VOCABULARY}
    (tmp_path / "config.json").write_text(json.dumps(record))
    trained = []
    monkeypatch.setattr(captioner, "train_captioner", lambda dataset, out_dir, config, **options: trained.append(config))
    reused = captioner.trained_captioner({}, str(tmp_path), config)
    assert not trained and captioning.vocabulary_of(reused) == VOCABULARY
    images, words = np.zeros((1, 16, 16, 3), np.float32), np.array([[captioning.START, 4]], np.int32)
    np.testing.assert_allclose(reused.predict([images, words], verbose=0), model.predict([images, words], verbose=0), atol=1e-6)
    captioner.trained_captioner({}, str(tmp_path), dataclasses.replace(config, epochs=2))  # another setting: trains
    assert [item.epochs for item in trained] == [2]


# ------------------------------------------------------------------ word grounding

def _sigmoid(value):
    return 1 / (1 + np.exp(-value))


def _lstm_step(layer, inputs):
    """One step from zero state, Keras' gate order (i, f, c, o), ReLU activation: i, f, g, o, c, h."""
    kernel, bias = (np.asarray(value) for value in (layer.cell.kernel, layer.cell.bias))
    z_i, z_f, z_c, z_o = np.split(inputs @ kernel + bias, 4, axis=-1)
    i, f, o, g = _sigmoid(z_i), _sigmoid(z_f), _sigmoid(z_o), np.maximum(z_c, 0)
    c = i * g
    return dict(i=i, f=f, g=g, o=o, c=c, h=o * np.maximum(c, 0))


def _eb(children, kernel, signal):
    """EB of a positive linear step: P(a) = a * (W+ (P / (a W+)))."""
    total = children @ kernel
    ratio = np.where(total > 0, signal / np.where(total > 0, total, 1), 0)
    return children * (ratio @ kernel.T)


def test_decoder_eb_r_on_one_step_equals_its_closed_form():
    """One step (the fed <start> only), at ``fc1``: both LSTM rules, written out with numpy."""
    model = _toy_captioner(seed=1)
    for name in ("lstm1", "lstm2"):  # no unit active through its bias alone, so that no mass is lost (any word works)
        model.get_layer(name).cell.bias.assign(np.zeros(model.get_layer(name).cell.bias.shape))
    image = np.random.default_rng(1).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    encoder = captioning.frame_encoder(model)
    fc1 = np.asarray(model.get_layer("fc1")(np.asarray(model.get_layer("backbone")(image)).reshape(1, -1)))
    fc2 = np.asarray(encoder(image))
    embedding = np.asarray(model.get_layer("embedding").embeddings)
    lstm1, lstm2 = model.get_layer("lstm1"), model.get_layer("lstm2")
    x = np.concatenate([fc2, embedding[[captioning.START]]], axis=-1)
    one = _lstm_step(lstm1, x)
    two = _lstm_step(lstm2, one["h"])
    V = np.asarray(model.get_layer("word_logits").kernel)
    W1, W2 = np.asarray(lstm1.cell.kernel), np.asarray(lstm2.cell.kernel)
    units, visual = lstm1.cell.units, fc2.shape[-1]
    one_hot = np.eye(len(VOCABULARY))[[captioning.START]]
    pos = lambda matrix: np.maximum(matrix, 0)  # noqa: E731

    def authors(top, prior):
        def unit(state, hidden_diff):  # lstm_unit_layer.cu's gradient kernels with c_{t-1} = 0
            cell_term = hidden_diff * state["o"] * (state["c"] > 0)
            return np.concatenate([cell_term * state["g"] * state["i"] * (1 - state["i"]), 0 * cell_term,
                                   cell_term * state["i"] * (state["g"] > 0),
                                   hidden_diff * np.maximum(state["c"], 0) * state["o"] * (1 - state["o"])], axis=-1)
        s = _eb(two["h"], pos(top), prior)
        h1 = _eb(one["h"], pos(W2), unit(two, s))
        signal = unit(one, h1)
        total = fc2 @ pos(W1[:visual]) + one_hot @ pos(embedding @ W1[visual:])
        ratio = np.where(total > 0, signal / np.where(total > 0, total, 1), 0)
        return fc2 * (ratio @ pos(W1[:visual]).T)

    def conserving(top, prior):
        g = slice(2 * units, 3 * units)
        s = _eb(two["h"], pos(top), prior)  # all of P(h) → c → g (c_{t-1} = 0)
        h1 = _eb(one["h"], pos(W2[:, g]), s * (two["c"] > 0))
        total = fc2 @ pos(W1[:visual, g]) + one_hot @ pos(embedding @ W1[visual:, g])
        ratio = np.where(total > 0, h1 * (one["c"] > 0) / np.where(total > 0, total, 1), 0)
        return fc2 * (ratio @ pos(W1[:visual, g]).T)

    W_fc2 = pos(np.asarray(model.get_layer("fc2").kernel))
    # a word whose map and dual map reach v by both rules (else eq. 7.5 divides 0 by 0: mass lost through biases)
    priors = np.eye(len(VOCABULARY))
    word = next(word for word in range(len(VOCABULARY))
                if all(closed(sign * V, priors[[word]]).sum() > 0 for closed in (authors, conserving) for sign in (1, -1)))
    for rule, closed in (("authors", authors), ("conserving", conserving)):
        expected = {}
        for sign in (1, -1):
            at_fc2 = closed(sign * V, priors[[word]])
            at_fc2 = at_fc2 / at_fc2.sum()  # eq. 7.5 with T = 1
            expected[sign] = _eb(fc1, W_fc2, at_fc2)
        words = np.array([[captioning.START]], np.int32)
        eb = word_saliency.excitation_backprop_words(model, image, words, [[word]], [0], layer="fc1", rule=rule)
        ceb = word_saliency.contrastive_excitation_backprop_words(model, image, words, [[word]], [0], layer="fc1", rule=rule)
        np.testing.assert_allclose(eb[..., 0], expected[1], rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(ceb[..., 0], expected[1] - expected[-1], rtol=1e-4, atol=1e-7)
        assert eb.sum() == pytest.approx(1.0, abs=1e-5) and ceb.sum() == pytest.approx(0.0, abs=1e-5)


def test_the_word_indicator_sits_at_its_step_and_maps_follow_eq_7_5():
    rule = "authors"  # the conserving rule's one-step closed form is tested above
    model = _toy_captioner(seed=2)
    images = np.random.default_rng(2).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    words = np.array([[captioning.START, 4, 5, 7, 8], [captioning.START, 4, 6, 7, 8]], np.int32)
    queries = np.array([[5, 8], [6, 8]], np.int32)
    maps = word_saliency.excitation_backprop_words(model, images, words, queries, [2, 3], rule=rule)
    assert maps.shape == (2, 4, 4, 2)  # the default layer, WORD_LAYER: the Tiny's second block, 16 px / 4
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-5)  # eq. 7.5, carried down the CNN
    # the word queried at step 2 does not see the words fed after it: the same map from the caption cut there
    cut = word_saliency.excitation_backprop_words(model, images, words[:, :3], queries[:, :1], [2], rule=rule)
    np.testing.assert_allclose(maps[..., 0], cut[..., 0], rtol=1e-5, atol=1e-7)
    # cEB-R is the EB-R map minus the EB-R map of the model whose word classifier is negated (eq. 7.7)
    ceb = word_saliency.contrastive_excitation_backprop_words(model, images, words, queries, [2, 3], rule=rule)
    logits = model.get_layer("word_logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([-kernel, bias])
    try:
        dual = word_saliency.excitation_backprop_words(model, images, words, queries, [2, 3], rule=rule)
    finally:
        logits.set_weights([kernel, bias])
    np.testing.assert_allclose(ceb, maps - dual, rtol=1e-4, atol=1e-6)


def test_clips_split_the_pooled_evidence_among_frames_by_their_activations():
    model = _toy_captioner(clips=True, seed=3)
    frame = np.random.default_rng(3).uniform(-1, 1, (16, 16, 3)).astype(np.float32)
    other = np.random.default_rng(4).uniform(-1, 1, (16, 16, 3)).astype(np.float32)
    words = np.array([[captioning.START, 4]], np.int32)
    same = word_saliency.excitation_backprop_words(model, np.stack([frame, frame])[None], words, [[5]], [1])
    np.testing.assert_allclose(same[0, 0], same[0, 1], rtol=1e-5)  # identical frames: half each
    assert same.sum() == pytest.approx(1.0, abs=1e-5) and same[0, 0].sum() == pytest.approx(0.5, abs=1e-5)
    # at fc2 the frames share P(v_i) in proportion to f_t,i (the mean pooling, eq. 7.8)
    clip = np.stack([frame, other])[None]
    at_fc1 = word_saliency.excitation_backprop_words(model, clip, words, [[5]], [1], layer="fc1")
    assert at_fc1.sum() == pytest.approx(1.0, abs=1e-5) and 0.0 < at_fc1[0, 0].sum() < 1.0


def test_caption_guided_saliency_is_the_words_probability_with_one_cell_kept():
    import keras

    model = _toy_captioner(seed=5, size=24)  # 3 × 3 cells
    images = np.random.default_rng(5).uniform(-1, 1, (1, 24, 24, 3)).astype(np.float32)
    words = np.array([[captioning.START, 4, 5]], np.int32)
    maps = word_saliency.caption_guided_saliency(model, images, words, [[5]], [2])
    assert maps.shape == (1, 3, 3, 1)
    features = np.asarray(model.get_layer("backbone")(images))
    kept = np.zeros_like(features)
    kept[:, 1, 2] = features[:, 1, 2]
    visual = model.get_layer("fc2")(model.get_layer("fc1")(keras.ops.reshape(kept, (1, -1))))
    probability = np.asarray(captioning.decode(captioning.decoder_layers(model), visual, words))[0, 2, 5]
    assert maps[0, 1, 2, 0] == pytest.approx(probability, rel=1e-5)
    assert np.all((maps >= 0) & (maps <= 1))


def test_compute_dispatches_word_methods_and_checks_the_queries():
    model = _toy_captioner(seed=6)
    images = np.zeros((1, 16, 16, 3), np.float32)
    words = np.array([[captioning.START, 4]], np.int32)
    maps = mindgap.saliency.compute(model, images, [[5]], "word_ceb_r", words=words, steps=[1], upsample=True)
    assert maps.shape == (1, 16, 16, 1)
    with pytest.raises(ValueError, match="one step in"):
        mindgap.saliency.compute(model, images, [[5]], "word_eb_r", words=words, steps=[2])


def test_pointing_per_phrase_on_hand_made_maps_and_boxes():
    """Table 7.5's hit: the map's maximum inside the phrase's box, no tolerance; any of the phrase's boxes counts."""
    maps = np.zeros((3, 10, 10))
    maps[0, 2, 3] = 1.0   # inside (x 3 in [2, 5), y 2 in [1, 4))
    maps[1, 2, 5] = 1.0   # x = 5.5: just right of the box's edge at 5
    maps[2, 8, 8] = 1.0   # inside the phrase's second box
    boxes = [[(2, 1, 5, 4)], [(2, 1, 5, 4)], [(2, 1, 5, 4), (7, 7, 10, 10)]]
    hits = [metrics.pointing_game_hit(cam, np.asarray(box, float), tolerance=0) for cam, box in zip(maps, boxes)]
    assert hits == [True, False, True]
    # the baselines: the centre (5, 5) is in no box; random = share of pixel centres inside: 9 / 100 and 18 / 100
    assert not metrics.centre_pointing_hit(np.asarray(boxes[0], float), (10, 10), tolerance=0)
    assert metrics.uniform_pointing_expectation(np.asarray(boxes[2], float), (10, 10), tolerance=0) == pytest.approx(0.18)


def test_msrvtt_reader_on_a_fixture(tmp_path):
    from mindgap.data import msrvtt

    info = {"videos": [{"video_id": "video0", "split": "train", "id": 0}, {"video_id": "video7", "split": "validate", "id": 7}],
            "sentences": [{"video_id": "video0", "caption": "A man is talking about a phone", "sen_id": 0},
                          {"video_id": "video0", "caption": "a man talks", "sen_id": 1},
                          {"video_id": "video7", "caption": "a cat plays", "sen_id": 2}]}
    (tmp_path / "train_val_videodatainfo.json").write_text(__import__("json").dumps(info))
    for video, count in (("video0", 3), ("video7", 2)):
        (tmp_path / "frames" / video).mkdir(parents=True)
        for index in range(count):
            (tmp_path / "frames" / video / f"{index:03d}.jpg").write_bytes(b"")
    data = msrvtt.read_msrvtt(tmp_path)
    assert sorted(data) == ["train", "val"]
    clip = data["train"][0]
    assert clip.video_id == "video0" and len(clip.frames) == 3 and clip.frames[0].endswith("000.jpg")
    assert clip.captions == (tuple("a man is talking about a phone".split()), ("a", "man", "talks"))
    assert data["val"][0].captions == (("a", "cat", "plays"),)
    (tmp_path / "frames" / "video7" / "000.jpg").unlink()
    (tmp_path / "frames" / "video7" / "001.jpg").unlink()
    with pytest.raises(DatasetError, match="No frames for video7"):
        msrvtt.read_msrvtt(tmp_path)


@pytest.mark.slow
def test_experiment_extra_small_writes_table_7_5_the_cost_and_the_figure(tmp_path, capsys):
    from experiments import caption_grounding

    assert caption_grounding.main(["--extra-small", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Caption-Guided Saliency" in out and "cEB-R per word" in out
    import json

    results = json.load(open(tmp_path / "extra_small" / "results.json"))
    table = results["table_7_5"]
    assert set(caption_grounding.THESIS_TABLE_7_5) <= set(table) and all(0 <= value <= 1 for value in table.values())
    assert results["table_7_5_tolerance"]["0"] == table and set(results["table_7_5_tolerance"]) == {"0", "scaled"}
    # the centre and random baselines are closed forms of the boxes: recompute them
    dataset = __import__("mindgap.data.captions", fromlist=["x"]).load_captions_set(str(tmp_path / "captions_set_extra-small"))
    boxes = [np.asarray(phrase.boxes, float) for record in dataset["test"] for text in record.captions for phrase in text.phrases]
    assert table["centre"] == pytest.approx(np.mean([metrics.centre_pointing_hit(box, (64, 64), 0) for box in boxes]))
    assert table["random"] == pytest.approx(np.mean([metrics.uniform_pointing_expectation(box, (64, 64), 0) for box in boxes]))
    scaled = results["table_7_5_tolerance"]["scaled"]  # 15 px · 64 / 224
    assert scaled["centre"] == pytest.approx(np.mean([metrics.centre_pointing_hit(box, (64, 64), 15 * 64 / 224) for box in boxes]))
    assert os.path.isfile(results["figures"][0]) and results["cost_ms"]["cells"] == 64


def test_explain_caption_prints_the_caption_and_writes_one_map_per_word(tmp_path, capsys):
    from mindgap.cli import main

    model = _toy_captioner(seed=7)
    kernel, bias = model.get_layer("word_logits").get_weights()
    bias[captioning.END] = bias[captioning.PAD] = -20.0  # a caption of the full length, never empty
    model.get_layer("word_logits").set_weights([kernel, bias])
    path = str(tmp_path / "captioner.keras")
    model.save(path)
    image = str(tmp_path / "image.png")
    import cv2

    cv2.imwrite(image, np.random.default_rng(7).integers(0, 255, (16, 16, 3)).astype(np.uint8))
    assert main(["explain-caption", image, "--model", path, "--words", "nonsense", "--out", str(tmp_path / "m.png")]) == 2
    assert "not in the caption" in capsys.readouterr().err
    from mindgap.explain_caption import explain_caption

    caption, maps = explain_caption(image, model, out=str(tmp_path / "maps.png"), max_words=3)
    content = [word for word in caption if word not in ("a", "of", "and")]
    assert len(caption) == 3
    assert list(maps) == list(dict.fromkeys(content)) and os.path.isfile(tmp_path / "maps.png")
    assert all(values.shape == (16, 16) for values in maps.values())
    # a given caption is fed instead of the model's own: its maps are saliency.compute's for that caption and step
    fed, maps = explain_caption(image, model, words=["seven"], caption="a three left of a seven")
    assert fed == ["a", "three", "left", "of", "a", "seven"]
    words, _ = captioning.encode(fed, VOCABULARY, len(fed) + 1)
    direct = mindgap.saliency.compute(model, captioning.load_images([image], 16), [[VOCABULARY.index("seven")]],
                                      method="word_ceb_r", words=words[None], steps=[[5]], upsample=True)
    np.testing.assert_allclose(maps["seven"], direct[0, ..., 0], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="not in the captioner's vocabulary"):
        explain_caption(image, model, words=["nine"], caption="a nine")
