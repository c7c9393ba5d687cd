"""The CNN-LSTM-LSTM captioner of thesis §7.3 / §7.5 (Venugopalan et al. 2015, the thesis's [119]) in miniature.

Per frame the Tiny backbone, flattened, two fully-connected ReLU layers ``fc1`` and ``fc2`` (VGG's fc6 and fc7); for
clips the ``fc2`` features are averaged over the frames (``mean_pool``), for images the pooling is dropped, "as the
thesis does".  The decoder: at every step the visual feature and the embedding of the previous word (``<start>``
first; teacher forcing in training) go into ``lstm1``, whose hidden state goes into ``lstm2``, whose hidden state
gives the next word's logits (``word_logits``) and probabilities (``word_probabilities``, a ``ClassProbabilities``
that carries the vocabulary inside the ``.keras`` file).  Both LSTMs use ReLU (thesis §7.1: tanh breaks EB's
assumptions A1/A2).  Registry names: ``Tiny-Captioner`` (images) and ``Tiny-Captioner-Clips`` (clips (batch, T, H, W,
3)).

Inputs: ``image`` (batch, H, W, 3) or ``video`` (batch, T, H, W, 3), scaled to [-1, 1]
(``mindgap.data.pipeline.preprocess``), and ``words`` (batch, L) int: ``<start>`` and the
caption's words; output (batch, L, V): the probability of each next word (the caption's
words, then ``<end>``).  :func:`greedy_captions` and :func:`beam_captions` decode.

Caption quality: :func:`bleu` (BLEU-4, Papineni et al. 2002, corpus level, written here:
no installed package computes it without a data download) and exact match.
"""

import collections
import math
import os

import keras
import numpy as np
import tensorflow as tf

from mindgap import registry
from mindgap.backbones import BACKBONE_LAYER, build_backbone
from mindgap.data.pipeline import preprocess
from mindgap.layers import ClassProbabilities
from mindgap.models import BACKBONE_NAMES, BACKBONE_PATTERN, backbone_prefix
from mindgap.recurrent import FC_LAYERS, fc_encoder

SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
PAD, START, END, UNKNOWN = range(len(SPECIALS))
IMAGE_INPUT, VIDEO_INPUT, WORDS_INPUT = "image", "video", "words"
FEATURE_LAYER = "fc2"
DECODER_LAYERS = ("embedding", "visual_steps", "decoder_input", "lstm1", "lstm2", "word_logits", "word_probabilities")
FC_UNITS, EMBEDDING_UNITS, LSTM_UNITS = 256, 32, 128
MAX_WORDS = 20


def tokens(text):
    """A caption's words as the vocabulary sees them: lower case, split on white space."""
    return str(text).lower().split()


def build_vocabulary(captions, min_count=1):
    """:data:`SPECIALS`, then every word seen ``min_count`` times in ``captions`` (word lists), sorted."""
    counts = collections.Counter(word for caption in captions for word in tokens(" ".join(caption)))
    return list(SPECIALS) + sorted(word for word, count in counts.items() if count >= min_count and word not in SPECIALS)


def encode(words, vocabulary, length):
    """(decoder input, target) int arrays of ``length``: ``<start> w1 … wn`` and ``w1 … wn <end>``, padded with 0."""
    index = {word: position for position, word in enumerate(vocabulary)}
    ids = [index.get(word, UNKNOWN) for word in tokens(" ".join(words))][:length - 1]
    inputs, targets = np.zeros(length, np.int32), np.zeros(length, np.int32)
    inputs[:len(ids) + 1] = [START] + ids
    targets[:len(ids) + 1] = ids + [END]
    return inputs, targets


def decode_ids(ids, vocabulary):
    """Word ids → words, stopping at ``<end>`` (or padding)."""
    words = []
    for value in np.asarray(ids).tolist():
        if value in (END, PAD):
            break
        words.append(vocabulary[value])
    return words


@keras.saving.register_keras_serializable(package="mindgap")
class RepeatOverSteps(keras.layers.Layer):
    """The visual feature (batch, D) repeated at every step of a sequence (batch, L, ...): (batch, L, D).

    Call arguments: ``inputs = [features, sequence]``; only the sequence's length is read.
    """

    def call(self, inputs):
        features, sequence = inputs
        return keras.ops.repeat(keras.ops.expand_dims(features, 1), keras.ops.shape(sequence)[1], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][1], input_shape[0][-1])


def _decoder_layers(vocabulary, embedding_units, lstm_units):
    size = len(vocabulary)
    return {"embedding": keras.layers.Embedding(size, embedding_units, name="embedding"),
            "visual_steps": RepeatOverSteps(name="visual_steps"),
            "decoder_input": keras.layers.Concatenate(name="decoder_input"),
            "lstm1": keras.layers.LSTM(lstm_units, activation="relu", return_sequences=True, name="lstm1"),
            "lstm2": keras.layers.LSTM(lstm_units, activation="relu", return_sequences=True, name="lstm2"),
            "word_logits": keras.layers.Dense(size, name="word_logits"),
            "word_probabilities": ClassProbabilities(list(vocabulary), name="word_probabilities", dtype="float32")}


def decode(layers, visual, words):
    """The decoder on the visual feature (batch, D) and the fed words (batch, L): word probabilities (batch, L, V).

    ``layers``: the layers of :data:`DECODER_LAYERS` by name (a built captioner's, see :func:`decoder_layers`).
    """
    embedded = layers["embedding"](words)
    steps = layers["decoder_input"]([layers["visual_steps"]([visual, embedded]), embedded])
    hidden = layers["lstm2"](layers["lstm1"](steps))
    return layers["word_probabilities"](layers["word_logits"](hidden))


def decoder_layers(model):
    return {name: model.get_layer(name) for name in DECODER_LAYERS}


def build_captioner(backbone, vocabulary, *, input_shape, clips=False, weights=None, fc_units=FC_UNITS,
                    embedding_units=EMBEDDING_UNITS, lstm_units=LSTM_UNITS, name=None):
    """The captioner: backbone → flatten → ``fc1`` → ``fc2`` [→ ``mean_pool`` over frames] → the two-LSTM decoder.

    Args:
        backbone: ``"tiny"`` (or another of ``mindgap.backbones``).
        vocabulary: the words, :data:`SPECIALS` first (:func:`build_vocabulary`).
        input_shape: (H, W, 3) or (T, H, W, 3); T is left free.
        clips: take clips (batch, T, H, W, 3) and average ``fc2`` over the frames (§7.3).
        weights: None or a backbone weights file (e.g. ``mindgap.pretrain.pretrained_tiny_weights()``).
    """
    vocabulary = [str(word) for word in vocabulary]
    if tuple(vocabulary[:len(SPECIALS)]) != SPECIALS:
        raise ValueError(f"A captioner's vocabulary starts with {SPECIALS}, got {vocabulary[:len(SPECIALS)]}; "
                         "build it with mindgap.captioning.build_vocabulary.")
    for label, value in (("fc_units", fc_units), ("embedding_units", embedding_units), ("lstm_units", lstm_units)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}.")
    frame_shape = tuple(int(size) for size in tuple(input_shape)[-3:])
    cnn = build_backbone(backbone, input_shape=frame_shape, weights=weights)
    words = keras.Input((None,), dtype="int32", name=WORDS_INPUT)
    if clips:
        inputs = keras.Input((None, *frame_shape), name=VIDEO_INPUT)
        features = keras.layers.TimeDistributed(cnn, name=BACKBONE_LAYER)(inputs)
        features = keras.layers.Reshape((-1, int(np.prod(cnn.output.shape[1:]))), name="flatten")(features)
    else:
        inputs = keras.Input(frame_shape, name=IMAGE_INPUT)
        features = keras.layers.Flatten(name="flatten")(cnn(inputs))
    for layer_name in FC_LAYERS:
        features = keras.layers.Dense(fc_units, activation="relu", name=layer_name)(features)
    if clips:
        features = keras.layers.GlobalAveragePooling1D(name="mean_pool")(features)
    outputs = decode(_decoder_layers(vocabulary, embedding_units, lstm_units), features, words)
    default = f"{backbone.capitalize()}-Captioner{'-Clips' if clips else ''}"
    return keras.Model([inputs, words], outputs, name=name or default)


def clips_captioner(model):
    """A ``-Clips`` captioner with an image captioner's weights: the same layers, ``fc2`` averaged over the frames.

    On a clip of identical frames it gives the image's caption (the mean of equal features is that feature).
    """
    check_captioner(model)
    if takes_clips(model):
        return model
    layers = decoder_layers(model)
    clips = build_captioner("tiny", vocabulary_of(model), input_shape=tuple(model.inputs[0].shape[1:]), clips=True,
                            fc_units=model.get_layer("fc1").units, embedding_units=layers["embedding"].output_dim,
                            lstm_units=layers["lstm1"].cell.units, name=f"{model.name}-Clips")
    clips.get_layer(BACKBONE_LAYER).layer.set_weights(model.get_layer(BACKBONE_LAYER).get_weights())
    for name in (*FC_LAYERS, "embedding", "lstm1", "lstm2", "word_logits"):
        clips.get_layer(name).set_weights(model.get_layer(name).get_weights())
    return clips


def is_captioner(model):
    """True for a model of :func:`build_captioner` (it has every decoder layer)."""
    return set(DECODER_LAYERS) <= {layer.name for layer in getattr(model, "layers", [])}


def check_captioner(model):
    return registry.checked(model, is_captioner, f"a captioner (no {', '.join(DECODER_LAYERS)}); build one with "
                            "mindgap.build_model('Tiny-Captioner', vocabulary_size, class_names=vocabulary)")


def takes_clips(model):
    return len(check_captioner(model).inputs[0].shape) == 5


_OVERRIDES = ("class_names", "fc_units", "embedding_units", "lstm_units")


def _build_family_member(match, num_classes, clips, *, weights=None, input_shape=(299, 299, 3), **overrides):
    """A registry name's captioner: ``num_classes`` is the vocabulary's size, ``class_names`` the vocabulary."""
    arguments = {key: value for key, value in overrides.items() if key in _OVERRIDES and value is not None}
    vocabulary = arguments.pop("class_names", None)
    if vocabulary is None or len(vocabulary) != num_classes:
        raise ValueError(f"A captioner needs its vocabulary as class_names ({num_classes} words); build it with "
                         "mindgap.captioning.build_vocabulary(captions).")
    prefix = backbone_prefix(match["backbone"])
    return build_captioner(BACKBONE_NAMES[prefix], vocabulary, input_shape=input_shape, clips=clips, weights=weights,
                           name=f"{prefix}-Captioner" + ("-Clips" if clips else ""), **arguments)


@registry.register_family("captioner", BACKBONE_PATTERN + "-Captioner", takes="images", kind="captioner",
                          listed=("Tiny-Captioner",), recognises=lambda model: is_captioner(model) and not takes_clips(model),
                          rank=4, description="a captioner: <Backbone>-Captioner (CNN, fc1/fc2, two ReLU LSTMs; thesis §7.3)")
def _build_image_captioner(match, num_classes, **arguments):
    return _build_family_member(match, num_classes, False, **arguments)


@registry.register_family("captioner-clips", BACKBONE_PATTERN + "-Captioner-Clips", takes="clips", kind="captioner",
                          listed=("Tiny-Captioner-Clips",), recognises=lambda model: is_captioner(model) and takes_clips(model),
                          rank=5, description="a video captioner: <Backbone>-Captioner-Clips (fc2 averaged over the frames)")
def _build_clips_captioner(match, num_classes, **arguments):
    return _build_family_member(match, num_classes, True, **arguments)


def vocabulary_of(model):
    return list(check_captioner(model).get_layer("word_probabilities").class_names)


def frame_encoder(model):
    """Image → ``fc2``: the per-frame CNN of a captioner, sharing its layers (for EB below the decoder, eq. 7.8)."""
    backbone = check_captioner(model).get_layer(BACKBONE_LAYER)
    return fc_encoder(model, backbone.layer if isinstance(backbone, keras.layers.TimeDistributed) else backbone)


def visual_features(model, images):
    """The decoder's visual input (batch, D): ``fc2`` of the image, or its mean over the clip's frames."""
    images = tf.convert_to_tensor(images, tf.float32)
    encoder = frame_encoder(model)
    if takes_clips(model):
        batch, steps = images.shape[:2]
        frames = encoder(tf.reshape(images, (-1, *images.shape[2:])))
        return tf.reduce_mean(tf.reshape(frames, (batch, steps, -1)), axis=1)
    return encoder(images)


def greedy_captions(model, images, max_words=MAX_WORDS):
    """The most probable next word at every step, from ``<start>`` until ``<end>``: a list of word lists."""
    return beam_captions(model, images, beam_width=1, max_words=max_words)


def beam_captions(model, images, beam_width=3, max_words=MAX_WORDS):
    """Beam search (``beam_width`` hypotheses by summed log-probability; 1 is greedy): a list of word lists."""
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be an integer >= 1, got {beam_width!r}.")
    vocabulary = vocabulary_of(model)
    visual = visual_features(model, images)
    layers = decoder_layers(model)
    step_fn = tf.function(lambda features, words: decode(layers, features, words)[:, -1], reduce_retracing=True,
                          autograph=False)
    results = []
    for row in range(int(visual.shape[0])):
        beams = [([START], 0.0, False)]
        for _ in range(max_words):
            if all(done for _, _, done in beams):
                break
            live = [beam for beam in beams if not beam[2]]
            probabilities = step_fn(tf.repeat(visual[row:row + 1], len(live), axis=0),
                                    tf.constant([ids for ids, _, _ in live], tf.int32)).numpy()
            candidates = [beam for beam in beams if beam[2]]
            for (ids, score, _), row_probabilities in zip(live, probabilities):
                for word in np.argsort(-row_probabilities)[:beam_width]:
                    candidates.append((ids + [int(word)], score + math.log(max(float(row_probabilities[word]), 1e-30)),
                                       int(word) == END))
            beams = sorted(candidates, key=lambda beam: -beam[1])[:beam_width]
        results.append(decode_ids(beams[0][0][1:], vocabulary))
    return results


def _ngrams(words, order):
    return collections.Counter(tuple(words[index:index + order]) for index in range(len(words) - order + 1))


def bleu(references, hypotheses, max_order=4):
    """Corpus BLEU-``max_order`` (Papineni et al. 2002): geometric mean of the clipped n-gram precisions
    (n = 1 … ``max_order``, counts summed over the corpus) times the brevity penalty
    ``exp(1 - r / c)`` when the total length c is below r, the sum of the closest reference lengths.

    ``references``: per hypothesis, a list of reference word lists; ``hypotheses``: word lists.  0 when
    any precision is 0 (no smoothing).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses; pass one set per hypothesis.")
    matches, totals = [0] * max_order, [0] * max_order
    hypothesis_length = reference_length = 0
    for refs, hypothesis in zip(references, hypotheses):
        hypothesis_length += len(hypothesis)
        reference_length += min((abs(len(ref) - len(hypothesis)), len(ref)) for ref in refs)[1]
        for order in range(1, max_order + 1):
            counts = _ngrams(hypothesis, order)
            most = collections.Counter()
            for ref in refs:
                most |= _ngrams(ref, order)
            matches[order - 1] += sum(min(count, most[gram]) for gram, count in counts.items())
            totals[order - 1] += max(len(hypothesis) - order + 1, 0)
    if min(totals) == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(match / total) for match, total in zip(matches, totals)) / max_order
    penalty = 1.0 if hypothesis_length > reference_length else math.exp(1 - reference_length / max(hypothesis_length, 1))
    return penalty * math.exp(log_precision)


def exact_match(references, hypotheses):
    """Share of hypotheses equal to one of their references."""
    return float(np.mean([list(hypothesis) in [list(ref) for ref in refs] for refs, hypothesis in zip(references, hypotheses)]))


# ---------------------------------------------------------------- data and training
def load_images(paths, image_size):
    """Image files → (n, s, s, 3) float32 in [-1, 1] (``mindgap.data.pipeline.preprocess`` of RGB)."""
    import cv2

    arrays = []
    for path in paths:
        image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"Cannot read the image {os.fspath(path)!r}; check the file.")
        image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (image_size, image_size), interpolation=cv2.INTER_AREA)
        arrays.append(image)
    return preprocess(np.stack(arrays)).numpy()


def caption_arrays(records, vocabulary, length):
    """(image index, decoder input, target) arrays, one row per caption of ``records`` (CaptionedImage)."""
    rows = [(index, *encode(caption.words, vocabulary, length)) for index, record in enumerate(records)
            for caption in record.captions]
    indices, inputs, targets = zip(*rows)
    return np.asarray(indices), np.stack(inputs), np.stack(targets)


def compile_captioner(model, learning_rate=1e-3):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  weighted_metrics=["accuracy"])
    return model
