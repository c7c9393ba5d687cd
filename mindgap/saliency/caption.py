"""Word grounding in a captioner: EB-R and cEB-R through the decoder (thesis §7.3, §7.5), Caption-Guided Saliency.

Bargal, "Grounding deep models of visual data", PhD thesis, Boston University 2019, §7.1 eqs. (7.1)–(7.9), Algorithm
3, §7.3 and Table 7.5; Ramanishka, Das, Zhang, Saenko, "Top-down visual saliency guided by captions", CVPR 2017 (the
thesis's [97]).  The model is ``mindgap.captioning``'s CNN-LSTM-LSTM; the caption is fed (teacher forcing: the
ground-truth caption, or the model's own generated one) and a query is a word id at a step.

**cEB-R of a word** (§7.3: "an indicator vector for the words to be visualized starting at the
time-steps they were predicted, through time, to the average pooling layer … distribute and
backpropagate probabilities among frames according to their forward activations (eq. 7.8)"):

1. prior one-hot on the word's logit at step n; ``P(h2_n) = h2_n V+_w / (h2_n . V+_w)`` (eq. 7.1;
   the dual uses ``(-V)+``, eq. 7.2);
2. back through ``lstm2`` over steps n … 0 to its inputs ``h1_t``, then through ``lstm1`` — whose ``h1_t`` receive
   that signal at *every* step — to its inputs ``x_t = [v, E onehot(w_{t-1})]``, by the LSTM rule chosen (``rule``:
   ``"authors"``, the authors' Caffe code, or ``"conserving"``, ours; :mod:`mindgap.saliency.recurrent` and NOTES.md
   "The authors' protocols").  The word embedding is the linear layer it is on the one-hot word, so the input's
   children are the visual feature ``v`` (>= 0) and the one-hot previous word with weights ``(E W_word)+``; the visual
   share ``P(v) = sum_t P(v at step t)`` is kept (the words' share is the caption's own evidence, not the image's);
3. through the mean pooling (clips): ``P(f_t,i) = P(v_i) f_t,i / sum_t' f_t',i`` (EB of a positive
   average, the frames' forward activations);
4. eq. 7.5: divide by the sum over frames and units; cEB-R (eq. 7.7): ``P_N - P̄_N``;
5. down each frame's CNN (eqs. 7.8, 7.9) to ``layer`` with ``mindgap.saliency.excitation``'s rules: by default
   :data:`WORD_LAYER`, the Tiny backbone's second block (16 × 16 at 64 px).  The thesis stops at VGG-16's conv5
   (14 × 14, 16 px cells at 224 px, on Flickr30kEntities' large boxes); at the Tiny backbone's output (8 × 8,
   8 px cells against digit boxes of median 11 × 16 px) the maps fell beside the digits (NOTES.md).

The authors' repository (sbargal/Caffe-ExcitationBP-RNNs) ships the action model only; its LSTM rule is in
``src/caffe/layers/lstm_layer.cpp``, ``lstm_unit_layer.cu``, ``eltwise_layer.cu`` and the InnerProduct of
jimmie33/Caffe-ExcitationBP (``inner_product_layer.cu``), read for ``mindgap.saliency.recurrent``.  The stacking of
two LSTMs, the embedding and the mean pooling follow the text above; the code for them is not published.

**Caption-Guided Saliency** (Ramanishka et al. 2017, the comparison of Table 7.5): each of the m cells of ``layer`` (8
× 8 = 64 at 64² on the Tiny backbone, the paper's m = 64) is kept alone (the others set to 0) and the rest of the
network (``fc1``, ``fc2``, the pooling, the decoder with the same fed caption) gives the word's probability at its
step: the map's value at that cell.  Cost: one CNN pass and m passes of everything above ``layer`` per map.

**Returned maps** (batch, h, w, n) for images, (batch, T, h, w, n) for clips, at ``layer``'s
resolution (16 × 16 for EB-R / cEB-R, 8 × 8 for Caption-Guided Saliency, at 64 px with the defaults).  EB-R: sums to 1 over space (and time); cEB-R: signed, sums to 0 (its positive
part is what the figures show; the pointing game takes its maximum); Caption-Guided Saliency:
probabilities in [0, 1].
"""

import weakref

import numpy as np
import tensorflow as tf

from mindgap import captioning, registry
from mindgap.cam import upsample_cams
from mindgap.engine import excitation as engine_excitation
from mindgap.engine import graph as _graph
from mindgap.saliency import excitation
from mindgap.saliency.recurrent import (DEFAULT_RULE, _dense_excitation, _rule, lstm_backward_authors,
                                        lstm_backward_conserving, lstm_states, temporal_normalization)

DEFAULT_LAYER = excitation.DEFAULT_LAYER  # Caption-Guided Saliency's cells: the backbone's 8 × 8 (their m = 64)
# where EB-R / cEB-R of a word stop: the Tiny backbone's second block (16 × 16 at 64 px, 4 px cells).  At the backbone's
# output (8 × 8) cEB-R's pointing game on the embedded set was 0.215 against 0.46 here, with the same captioner and
# maps (NOTES.md, "Caption grounding: the layer"); another backbone's captioner passes ``layer=``.
WORD_LAYER = registry.METHODS["word_ceb_r"].defaults["layer"]


class _Plan:
    """Per captioner and layer: the frame encoder's EB plan (image → fc2) and the decoder's weights."""

    def __init__(self, model, layer):
        captioning.check_captioner(model)
        for name in ("lstm1", "lstm2"):
            activation = getattr(model.get_layer(name).activation, "__name__", "")
            if activation != "relu":
                raise ValueError(f"EB-R needs LSTMs with ReLU activation (thesis §7.1); {name} of {model.name!r} uses "
                                 f"{activation!r}. Build the captioner with mindgap.captioning (ReLU).")
        self.model = model
        self.clips = captioning.takes_clips(model)
        self.encoder = captioning.frame_encoder(model)
        self.cnn = engine_excitation.plan_of(self.encoder, layer, top=captioning.FEATURE_LAYER)
        self.layers = captioning.decoder_layers(model)

    def kernels(self, rule):
        """(visual rows, folded word rows ``E W_word``, lstm1's U, lstm2's W, lstm2's U), positive parts, by rule."""
        lstm1, lstm2 = self.layers["lstm1"].cell, self.layers["lstm2"].cell
        units = lstm1.units
        kernel1 = tf.convert_to_tensor(lstm1.kernel)
        visual_size = int(kernel1.shape[0]) - int(self.layers["embedding"].output_dim)
        word_rows = tf.convert_to_tensor(self.layers["embedding"].embeddings) @ kernel1[visual_size:]
        matrices = [kernel1[:visual_size], word_rows, tf.convert_to_tensor(lstm1.recurrent_kernel),
                    tf.convert_to_tensor(lstm2.kernel), tf.convert_to_tensor(lstm2.recurrent_kernel)]
        if rule == "conserving":  # the candidate g's columns only (gates act as weights)
            matrices = [matrix[:, 2 * units:3 * units] for matrix in matrices]
        return [tf.nn.relu(matrix) for matrix in matrices]

    def forward(self, images, words):
        """Every value the backward pass needs: the CNN's values, per-frame fc2, v, the fed one-hot words, LSTM states."""
        frames = tf.reshape(images, (-1, *images.shape[-3:]))
        values = _graph.run(self.cnn.graph, frames, until=self.cnn.logits_key)
        batch = tf.shape(words)[0]
        per_frame = tf.reshape(values[self.cnn.logits_key], (batch, -1, values[self.cnn.logits_key].shape[-1]))
        visual = tf.reduce_mean(per_frame, axis=1)
        one_hot = tf.one_hot(words, self.layers["word_logits"].units, dtype=visual.dtype)
        visual_steps = tf.repeat(visual[:, None], words.shape[1], axis=1)
        embedded = self.layers["embedding"](words)
        states1 = lstm_states(self.layers["lstm1"], tf.concat([visual_steps, embedded], axis=-1))
        states2 = lstm_states(self.layers["lstm2"], states1["h"])
        return dict(values=values, per_frame=per_frame, visual=visual, visual_steps=visual_steps, one_hot=one_hot,
                    states1=states1, states2=states2)

    def visual_mwp(self, forward, prior, steps, classifier_kernel, kernels, rule):
        """The signal of v (batch, D) from a prior on the word logits at ``steps`` (batch,) (docstring steps 1–2).

        The unrolled backward runs over every fed step; those after a row's queried step carry no signal.
        """
        visual_rows, word_rows, recurrent1, kernel2, recurrent2 = kernels
        states1, states2 = forward["states1"], forward["states2"]
        length = forward["one_hot"].shape[1]
        top = tf.gather(states2["h"], steps, axis=1, batch_dims=1)
        (hidden,) = _dense_excitation([top], [classifier_kernel], prior)
        at_step = hidden[:, None] * tf.one_hot(steps, length, dtype=hidden.dtype)[..., None]
        children = [forward["visual_steps"], forward["one_hot"]]
        last = length - 1
        if rule == "authors":
            (below,) = lstm_backward_authors(states2, [states1["h"]], [kernel2], at_step, last)
            visual, _ = lstm_backward_authors(states1, children, [visual_rows, word_rows], below, last)
        else:
            (below,) = lstm_backward_conserving(states2, [states1["h"]], [kernel2], recurrent2, at_step, last)
            visual, _ = lstm_backward_conserving(states1, children, [visual_rows, word_rows], recurrent1, below, last)
        return tf.reduce_sum(visual, axis=1)

    def frame_mwp(self, forward, prior, steps, contrastive, rule):
        """P_N (eq. 7.5) or Map (eq. 7.7) at every frame's fc2: (batch, T, D)."""
        kernels = self.kernels(rule)
        classifier = tf.convert_to_tensor(self.layers["word_logits"].kernel)
        per_frame = forward["per_frame"]
        # EB through the mean over frames: each frame's share of v_i is f_t,i / sum_t f_t,i (eq. 7.8)
        shares = engine_excitation.safe_divide(per_frame, tf.reduce_sum(per_frame, axis=1, keepdims=True))

        def normalised(kernel):
            visual = self.visual_mwp(forward, prior, steps, kernel, kernels, rule)
            return temporal_normalization(visual[:, None] * shares)

        mwp = normalised(tf.nn.relu(classifier))
        if contrastive:
            mwp = mwp - normalised(tf.nn.relu(-classifier))
        return mwp


_PLANS = weakref.WeakKeyDictionary()


def _plan(model, layer):
    plans = _PLANS.setdefault(model, {})
    if layer not in plans:
        plan = _Plan(model, layer)
        plan.function = tf.function(lambda images, words, queries, steps, contrastive, rule:
                                    _maps(plan, images, words, queries, steps, contrastive, rule), autograph=False)
        plans[layer] = plan
    return plans[layer]


def _maps(plan, images, words, queries, steps, contrastive, rule):
    forward = plan.forward(images, words)
    batch, frames = tf.shape(words)[0], forward["per_frame"].shape[1]
    vocabulary_size = plan.layers["word_logits"].units
    maps = []
    for column in range(queries.shape[1]):
        prior = tf.one_hot(queries[:, column], vocabulary_size, dtype=forward["visual"].dtype)
        mwp = plan.frame_mwp(forward, prior, steps[:, column], contrastive, rule)
        below = plan.cnn.backward(forward["values"], tf.reshape(mwp, (-1, mwp.shape[-1])))[plan.cnn.target_key]
        summed = tf.reduce_sum(below, axis=-1) if below.shape.rank == 4 else below
        maps.append(tf.reshape(summed, tf.concat([[batch, frames], tf.shape(summed)[1:]], axis=0)))
    stacked = tf.stack(maps, axis=-1)
    return stacked if plan.clips else stacked[:, 0]


def _check_queries(model, images, words, queries, steps):
    images = np.asarray(images, np.float32)
    rank = 5 if captioning.takes_clips(model) else 4
    if images.ndim != rank:
        raise ValueError(f"{model.name!r} takes {'clips (batch, T, H, W, 3)' if rank == 5 else 'images (batch, H, W, 3)'}, "
                         f"got shape {images.shape}.")
    words = np.asarray(words)
    if words.ndim != 2 or len(words) != len(images) or not np.issubdtype(words.dtype, np.integer):
        raise ValueError(f"words must be the fed word ids (batch, L) for {len(images)} inputs, got shape {words.shape}; "
                         "encode captions with mindgap.captioning.encode.")
    queries = np.asarray(queries)
    queries = np.tile(queries, (len(images), 1)) if queries.ndim == 1 else queries
    steps = np.asarray(steps)
    steps = np.tile(steps, (len(images), 1)) if steps.ndim == 1 else steps
    if queries.ndim != 2 or queries.shape[0] != len(images) or not np.issubdtype(queries.dtype, np.integer):
        raise ValueError(f"The queried words must be ids (n,) or (batch, n) for {len(images)} inputs, got shape "
                         f"{queries.shape}.")
    if steps.shape != queries.shape or not np.issubdtype(steps.dtype, np.integer) or steps.min() < 0 \
            or steps.max() >= words.shape[1]:
        raise ValueError(f"steps must give one step in [0, {words.shape[1] - 1}] per queried word (shape {queries.shape}), "
                         f"got {steps.tolist()}; a word of the caption at position k is predicted at step k.")
    return images, words.astype(np.int32), queries.astype(np.int32), steps.astype(np.int32)


def excitation_backprop_words(model, images, words, queries, steps, layer=WORD_LAYER, rule=DEFAULT_RULE,
                              contrastive=False):
    """EB-R (or cEB-R with ``contrastive``) maps of words at steps: (batch, [T,] h, w, n).

    ``words`` (batch, L): the fed ids (``<start>`` and the caption); ``queries`` (batch, n) or (n,): the word ids
    to ground; ``steps``, the same shape: the step of each query (the word's position in the caption).
    """
    images, words, queries, steps = _check_queries(model, images, words, queries, steps)
    plan = _plan(model, layer)
    return plan.function(tf.constant(images), tf.constant(words), tf.constant(queries), tf.constant(steps), contrastive,
                         _rule(rule)).numpy()


def contrastive_excitation_backprop_words(model, images, words, queries, steps, layer=WORD_LAYER, rule=DEFAULT_RULE):
    """cEB-R maps of words (eq. 7.7 through the decoder), signed: (batch, [T,] h, w, n)."""
    return excitation_backprop_words(model, images, words, queries, steps, layer, rule, contrastive=True)


def caption_guided_saliency(model, images, words, queries, steps, layer=DEFAULT_LAYER):
    """Ramanishka et al.'s map: the word's probability at its step when only one cell of ``layer`` is kept.

    (batch, [T,] h, w, n); for clips the same cell is kept in every frame (spatial saliency) and the map
    is repeated over frames.
    """
    images, words, queries, steps = _check_queries(model, images, words, queries, steps)
    plan = _plan(model, layer)
    if not hasattr(plan, "kept_alone"):
        plan.kept_alone = tf.function(lambda frames, words: _kept_alone(plan, frames, words), autograph=False)
    maps = np.stack([plan.kept_alone(tf.constant(images[row:row + 1]), tf.constant(words[row:row + 1])).numpy()
                     for row in range(len(images))])  # (batch, m, L, V) → the queried entries below
    height, width = plan.cells
    rows = np.arange(len(images))[:, None]
    chosen = maps[rows, :, steps, queries]  # (batch, n, m)
    maps = np.moveaxis(chosen, 1, -1).reshape(len(images), height, width, queries.shape[1])
    if plan.clips:
        maps = np.repeat(maps[:, None], images.shape[1], axis=1)
    return maps


def _kept_alone(plan, clip, words):
    """Word probabilities (m, L, V) of one image or clip with each of the m cells of the layer kept alone."""
    frames = tf.reshape(clip, (-1, *clip.shape[-3:]))
    features = _graph.run(plan.cnn.graph, frames, until=plan.cnn.target_key)[plan.cnn.target_key]  # (T, h, w, c)
    height, width = features.shape[1:3]
    plan.cells = (height, width)
    count = height * width
    cells = tf.reshape(tf.eye(count, dtype=features.dtype), (count, 1, height, width, 1))
    kept = tf.reshape(features[None] * cells, (-1, *features.shape[1:]))  # (m · T, h, w, c)
    fc2 = _graph.run_from(plan.cnn.graph, plan.cnn.target_key, kept, until=plan.cnn.logits_key)[plan.cnn.logits_key]
    pooled = tf.reduce_mean(tf.reshape(fc2, (count, -1, fc2.shape[-1])), axis=1)
    return captioning.decode(plan.layers, pooled, tf.repeat(words, count, axis=0))


def compute(model, images, queries, method="word_ceb_r", *, words, steps, upsample=False, **options):
    """Word maps by ``method`` (``mindgap.registry.method_names("words")``), the ``mindgap.saliency.compute`` shape:
    (batch, [T,] h, w, n)."""
    maps = registry.method_of(method, takes="words")(model, images, words, queries=queries, steps=steps, **options)
    if not upsample:
        return maps
    size = np.asarray(images).shape[-3:-1]
    if maps.ndim == 5:
        flat = upsample_cams(maps.reshape(-1, *maps.shape[2:]), size)
        return flat.reshape(*maps.shape[:2], *flat.shape[1:])
    return upsample_cams(maps, size)
