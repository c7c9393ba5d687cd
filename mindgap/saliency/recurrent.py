"""Saliency through time: EB-R and contrastive EB-R (thesis ch. 7), and gradient saliency (BP, BP-R).

Bargal, "Grounding deep models of visual data", PhD thesis, Boston University 2019, §7.1,
eqs. (7.1)–(7.9) and Algorithm 3; Bargal et al., "Excitation Backprop for RNNs", CVPR 2018.
Inputs are clips (batch, T, H, W, 3); maps are (batch, T, h, w, n) at ``layer``'s resolution.

**The CNN-LSTM** (``mindgap.recurrent``): per frame ``x_t = fc2(fc1(flatten(CNN(f_t))))``
(>= 0, ReLU); one LSTM with ReLU (§7.1: tanh violates EB's assumptions A1/A2; the thesis
and its Caffe code use ReLU and its derivative)::

    i, f, o = sigmoid(.),  g_t = ReLU(W_g x_t + U_g h_{t-1} + b_g)
    c_t = f_t c_{t-1} + i_t g_t,     h_t = o_t ReLU(c_t),     logits_t = V h_t + b

With c_0 = 0 and g >= 0 every c_t is >= 0, so all signal neurons (x, g, c, h) are non-negative.

**RNN backward (eqs. 7.1–7.4): two rules.**  The thesis gives EB's rule
``P(a_i) = sum_j Z_j a_i w_ij+ P(a_j)`` (``Z_j = 1 / sum_i a_i w_ij+``) and says the LSTM uses
"ReLU non-linearities and corresponding derivatives"; it does not say which neurons of an
LSTM are whose children.  ``rule=`` chooses (the prior is the same for both: one-hot on class
``A`` at step n, Algorithm 3 step 1, default n = T, the last; ``P(h_n) = h_n V+_A / (h_n . V+_A)``,
eq. 7.1; the dual uses ``(-V)+``, eq. 7.2; biases are left out of Z, as everywhere in
``mindgap.saliency.excitation`` and in the authors' InnerProduct layer):

``rule="authors"`` (default; the thesis's tables): what the authors' Caffe code does, read in
sbargal/Caffe-ExcitationBP-RNNs (commit a116f74) and the EB Caffe it extends (jimmie33/Caffe-ExcitationBP):

* ``src/caffe/layers/lstm_layer.cpp``, ``LSTMLayer::FillUnrolledNet``: the unrolled LSTM computes
  ``gate_input_t = W_hc_h_{t-1} + W_xc_x_t`` (an ``Eltwise`` SUM, bottoms in that order; ``W_xc_x``
  is one ``InnerProduct`` over all steps with the bias ``b_c``, ``W_hc`` has none), then
  ``LSTMUnit(c_{t-1}, gate_input_t, cont_t) -> (c_t, h_t)``, Caffe's gate order (i, f, o, g);
* ``src/caffe/layers/eltwise_layer.cu``, ``EltwiseLayer::Backward_eb_gpu``, SUM: bottoms 1 and 2
  receive the top's signal, bottom 0 (``W_hc_h_{t-1}``) receives 0, so nothing flows back through
  the recurrent weights and ``h_{t-1}`` gets no signal from step t;
* ``src/caffe/layers/lstm_unit_layer.cu`` (and ``.cpp``), ``LSTMUnitLayer::Backward_eb_gpu``: the plain gradient
  kernels ``LSTMUnitBackward`` and ``LSTMActsBackward`` (ReLU in place of tanh for g and c): ``c_term = C_diff +
  H_diff o [c > 0]``, ``C_prev_diff = cont c_term f``, and the four gate signals ``i: c_term g i(1-i)``, ``f: c_term
  c_{t-1} f(1-f)``, ``o: H_diff ReLU(c) o(1-o)``, ``g: c_term i [g > 0]``;
* ``src/caffe/layers/inner_product_layer.cu`` (jimmie33/Caffe-ExcitationBP), ``InnerProductLayer::Backward_eb_gpu``:
  ``P(x) = x * (W+ (P_out / (x W+)))`` (0 where ``x W+ = 0``), here with ``W_xc`` of all four gates, so each frame's
  input x_t gets the EB of its step's four gate signals.

So time flows back through the cell state only (``C_diff`` of step t-1 is ``c_term f`` of step t), ``H_diff`` is the
prior's ``P(h_n)`` at the queried step and 0 before it, and the gate signals are gradients, not probabilities: the
mass that reaches x_t is not conserved, and eq. 7.5 makes it a distribution over space and time.

``rule="conserving"`` (ours, mindgap's first rule): the gates i, f, o act as the non-negative
weights they are in the forward pass and probability flows through the signal neurons:

* ``h_t -> c_t``: one child with weight ``o_t``: all of ``P(h_t)`` goes to ``c_t`` (where c_t > 0);
* ``c_t -> (c_{t-1}, g_t)`` with weights ``(f_t, i_t)``: ``P(c_{t-1}) = P(c_t) f_t c_{t-1} / c_t``,
  ``P(g_t) = P(c_t) i_t g_t / c_t`` (their sum is ``P(c_t)`` exactly);
* ``g_t -> (x_t, h_{t-1})`` with ``(W_g+, U_g+)``: a Dense EB step over both children (eq. 7.3),
  so probability reaches earlier frames through the cell *and* the hidden state.

Every step conserves the mass (except where a unit is active only through its bias), so
``sum_t sum_i P(x_t,i) = 1`` up to that loss.  Its known weakness: with saturated gates and
``h_{-1} = 0`` the first frame collects most of the mass (NOTES.md).

Then, for both rules, **temporal normalization** (eqs. 7.5, 7.6) divides by the sum over space and time: ``P_N(x_t) =
P(x_t) / sum_t sum_i P(x_t,i)``. **cEB-R** (eq. 7.7): ``Map^t = P_N(x_t) - P̄_N(x_t)``, signed.  **CNN backward**
(eqs. 7.8, 7.9): ``Map^t`` (or ``P_N`` for EB-R) goes down through each frame's CNN with EB's rules
(``mindgap.saliency.excitation``, the same code as for images) to ``layer``.

**Closed forms on one step** (T = 1, tested): ``c = i g``, ``h = o i g``, ``s = P(h)``. Conserving: ``s_j = o_j i_j
g_j V+_jA / sum_k o_k i_k g_k V+_kA`` and ``P(x_d) = x_d sum_j W_g+_dj s_j / (sum_d' x_d' W_g+_d'j)``: EB of the two
linear layers ``x -> g -> logit`` with the gates folded into ``V``.  Authors: the gate signals ``d_i = s o g i(1-i)``,
``d_f = 0``, ``d_o = s ReLU(c) o(1-o)``, ``d_g = s o i [g > 0]`` go to x by EB through the whole input kernel ``W+``
(all four gates).

**Returned maps** (batch, T, h, w, n): EB-R sums to 1 over space *and* time (eq. 7.5); cEB-R is the signed difference
of two such maps (it sums to 0 over space and time; the sum of each frame's map over time is the temporal grounding of
§7.2: positive where the queried action is, negative elsewhere); frames after step n get 0.  BP / BP-R: at the input
resolution, ``max_channels |d logit_A / d frame|`` (Simonyan et al. 2014) of the per-frame CNN (BP) or of the
CNN-LSTM's step-n logit (BP-R, through time).  Per-frame EB / cEB (the thesis's CNN baselines) are ``eb`` / ``ceb`` of
an image model on every frame (``compute``).
"""

import functools

import tensorflow as tf

from mindgap import recurrent
from mindgap.engine import excitation
from mindgap.engine import graph as _graph
from mindgap.engine.cache import per_model

DEFAULT_LAYER = excitation.DEFAULT_LAYER
RULES = ("authors", "conserving")
DEFAULT_RULE = "authors"


def lstm_states(layer, inputs):
    """The forward pass of a Keras ``LSTM`` layer written out: dict of (batch, T, units) i, f, o, g, c, h.

    Keras' gate order (i, f, c, o); ``g`` is the activated candidate and ``h = o * activation(c)``.
    """
    kernel, recurrent_kernel, bias = (tf.convert_to_tensor(value) for value in
                                      (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias))
    activation, gate = layer.cell.activation, layer.cell.recurrent_activation
    batch, steps, units = tf.shape(inputs)[0], inputs.shape[1], layer.cell.units
    hidden = tf.zeros((batch, units), inputs.dtype)
    cell = tf.zeros((batch, units), inputs.dtype)
    states = {name: [] for name in ("i", "f", "o", "g", "c", "h", "c_previous", "h_previous")}
    for step in range(steps):
        z = inputs[:, step] @ kernel + hidden @ recurrent_kernel + bias
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        values = dict(i=gate(z_i), f=gate(z_f), o=gate(z_o), g=activation(z_c), c_previous=cell, h_previous=hidden)
        cell = values["f"] * cell + values["i"] * values["g"]
        hidden = values["o"] * activation(cell)
        values.update(c=cell, h=hidden)
        for name, value in values.items():
            states[name].append(value)
    return {name: tf.stack(value, axis=1) for name, value in states.items()}


def _dense_excitation(inputs, kernel, mwp):
    """EB through a positive linear layer: ``P_in = a * (W+ (P_out / (a W+)))`` for one or several inputs."""
    total = sum(value @ weights for value, weights in zip(inputs, kernel))
    ratio = excitation.safe_divide(mwp, total)
    return [value * (ratio @ tf.transpose(weights)) for value, weights in zip(inputs, kernel)]


def lstm_excitation(states, inputs, candidate_kernels, classifier_kernel, prior, step):
    """EB-R through the unrolled LSTM by the conserving rule (ours; eqs. 7.1, 7.3): the MWP (batch, T, D).

    ``candidate_kernels``: (W_g+, U_g+); ``classifier_kernel``: V+ (or (-V)+ for the dual, eq. 7.2);
    ``prior`` (batch, c) on the logits at ``step``.  Not normalised over time (see eq. 7.5).
    """
    (hidden_mwp,) = _dense_excitation([states["h"][:, step]], [classifier_kernel], prior)
    return lstm_backward_conserving(states, [inputs], candidate_kernels[:1], candidate_kernels[1],
                                    _at_step(hidden_mwp, step, inputs.shape[1]), step)[0]


def _at_step(signal, step, steps):
    """(batch, units) → (batch, T, units), zero but at ``step``: a signal that reaches h only at the queried step."""
    return signal[:, None] * tf.one_hot(step, steps, dtype=signal.dtype)[None, :, None]


def lstm_backward_conserving(states, inputs, input_kernels, recurrent_kernel, hidden_signals, step):
    """The conserving rule from signals at every step's h (batch, T, units), e.g. from an LSTM stacked above.

    ``inputs``: the LSTM's input split into children (each (batch, T, D_k), non-negative), ``input_kernels`` their
    rows of W_g+; ``recurrent_kernel``: U_g+.  Returns the MWP of each child (batch, T, D_k), steps after ``step`` 0.
    """
    steps = inputs[0].shape[1]
    carried = tf.zeros_like(hidden_signals[:, 0])
    cell_carry = tf.zeros_like(carried)
    per_step = [[tf.zeros_like(value[:, 0]) for value in inputs] for _ in range(steps)]
    for time in range(step, -1, -1):
        hidden_mwp = carried + hidden_signals[:, time]
        cell = states["c"][:, time]
        cell_mwp = cell_carry + tf.where(cell > 0, hidden_mwp, 0.0)  # h_t = o_t ReLU(c_t): one child
        ratio = excitation.safe_divide(cell_mwp, cell)
        cell_carry = ratio * states["f"][:, time] * states["c_previous"][:, time]
        candidate_mwp = ratio * states["i"][:, time] * states["g"][:, time]
        *per_step[time], carried = _dense_excitation([value[:, time] for value in inputs] + [states["h_previous"][:, time]],
                                                     list(input_kernels) + [recurrent_kernel], candidate_mwp)
    return [tf.stack([values[index] for values in per_step], axis=1) for index in range(len(inputs))]


def gate_signals(states, time, cell_diff, hidden_diff):
    """One step of the authors' ``LSTMUnitLayer::Backward_eb_gpu`` (the gradient kernels, ReLU for g and c).

    Returns the signals of the four gate pre-activations in Keras' kernel order (i, f, g, o), each
    (batch, units), and ``C_prev_diff`` (the signal of ``c_{t-1}``).
    """
    i, f, o, g = (states[name][:, time] for name in ("i", "f", "o", "g"))
    cell, cell_previous = states["c"][:, time], states["c_previous"][:, time]
    cell_term = cell_diff + hidden_diff * o * tf.cast(cell > 0, cell.dtype)
    signals = [cell_term * g * i * (1 - i),                       # i_diff
               cell_term * cell_previous * f * (1 - f),           # f_diff
               cell_term * i * tf.cast(g > 0, g.dtype),           # g_diff (ReLU's derivative)
               hidden_diff * tf.nn.relu(cell) * o * (1 - o)]      # o_diff
    return signals, cell_term * f


def lstm_excitation_authors(states, inputs, input_kernel, classifier_kernel, prior, step):
    """EB-R through the unrolled LSTM by the authors' Caffe rule: the signal (batch, T, D) of the LSTM's inputs.

    ``input_kernel``: W+ of all four gates (D, 4 units), Keras' order; ``classifier_kernel``: V+ or (-V)+.
    The recurrent term ``W_hc h_{t-1}`` gets nothing (``EltwiseLayer::Backward_eb_gpu``), so ``h`` carries
    a signal only at ``step`` and time flows back through ``c`` alone.  Not normalised over time (eq. 7.5).
    """
    (hidden_diff,) = _dense_excitation([states["h"][:, step]], [classifier_kernel], prior)
    return lstm_backward_authors(states, [inputs], [input_kernel], _at_step(hidden_diff, step, inputs.shape[1]), step)[0]


def lstm_backward_authors(states, inputs, input_kernels, hidden_signals, step):
    """The authors' rule from signals at every step's h (batch, T, units), e.g. from an LSTM stacked above.

    ``H_diff`` of step t is what reaches ``h_t`` from above (nothing from step t+1: ``W_hc h_t`` receives 0).
    ``inputs``: the LSTM's input split into children (each (batch, T, D_k), non-negative), ``input_kernels`` their
    rows of W+ (all four gates).  Returns each child's signal (batch, T, D_k), steps after ``step`` 0.
    """
    steps = inputs[0].shape[1]
    cell_diff = tf.zeros_like(hidden_signals[:, 0])
    per_step = [[tf.zeros_like(value[:, 0]) for value in inputs] for _ in range(steps)]
    for time in range(step, -1, -1):
        signals, cell_diff = gate_signals(states, time, cell_diff, hidden_signals[:, time])
        per_step[time] = _dense_excitation([value[:, time] for value in inputs], list(input_kernels),
                                           tf.concat(signals, axis=-1))
    return [tf.stack([values[index] for values in per_step], axis=1) for index in range(len(inputs))]


def temporal_normalization(mwp):
    """Eqs. (7.5)/(7.6): divide each clip's MWP (batch, T, ...) by its sum over space and time."""
    axes = list(range(1, mwp.shape.rank))
    return excitation.safe_divide(mwp, tf.reduce_sum(mwp, axis=axes, keepdims=True))


class _Plan:
    """Per CNN-LSTM: its frame encoder (image → fc2), the EB plan of its CNN and the LSTM's weights."""

    def __init__(self, model, layer):
        recurrent.check_cnn_lstm(model)
        if recurrent.lstm_activation(model) != "relu":
            raise ValueError(f"EB-R needs an LSTM with ReLU activation (thesis §7.1: tanh breaks EB's assumptions); "
                             f"{model.name!r} uses {recurrent.lstm_activation(model)!r}. Train a 'Tiny-LSTM' (ReLU), or "
                             "use bp_r, which any LSTM allows.")
        self.encoder = recurrent.frame_encoder(model)
        self.cnn = excitation.plan_of(self.encoder, layer, top=recurrent.FEATURE_LAYER)
        self.lstm = model.get_layer(recurrent.LSTM_LAYER)
        self.classifier = model.get_layer(recurrent.LOGITS_LAYER)

    def candidate_kernels(self):
        units = self.lstm.cell.units
        return [tf.nn.relu(tf.convert_to_tensor(kernel)[:, 2 * units:3 * units])
                for kernel in (self.lstm.cell.kernel, self.lstm.cell.recurrent_kernel)]

    def input_mwp(self, inputs, states, prior, step, contrastive, rule=DEFAULT_RULE):
        """P_N of eq. (7.5) at the LSTM's input, or Map of eq. (7.7) when ``contrastive``, by ``rule``."""
        authors = rule == "authors"
        through = lstm_excitation_authors if authors else lstm_excitation  # the same arguments, W+ or (W_g+, U_g+)
        kernels = tf.nn.relu(tf.convert_to_tensor(self.lstm.cell.kernel)) if authors else self.candidate_kernels()
        classifier = tf.convert_to_tensor(self.classifier.kernel)
        mwp = temporal_normalization(through(states, inputs, kernels, tf.nn.relu(classifier), prior, step))
        if contrastive:
            mwp = mwp - temporal_normalization(through(states, inputs, kernels, tf.nn.relu(-classifier), prior, step))
        return mwp


def _plan(model, layer):
    def make():
        plan = _Plan(model, layer)
        plan.function = tf.function(functools.partial(_maps, plan), reduce_retracing=True)
        return plan

    return per_model(model, ("eb-r", layer), make)


def _maps(plan, clips, classes, count, step, contrastive, at_input, rule):
    batch, steps = tf.shape(clips)[0], clips.shape[1]
    frames = tf.reshape(clips, (-1, *clips.shape[2:]))
    values = _graph.run(plan.cnn.graph, frames, until=plan.cnn.logits_key)
    features = values[plan.cnn.logits_key]
    inputs = tf.reshape(features, (batch, steps, features.shape[-1]))
    states = lstm_states(plan.lstm, inputs)
    num_classes = plan.classifier.kernel.shape[-1]
    maps = []
    for column in range(count):
        prior = tf.one_hot(classes[:, column], num_classes, dtype=inputs.dtype)
        mwp = plan.input_mwp(inputs, states, prior, step, contrastive, rule)
        if at_input:
            maps.append(mwp)
            continue
        below = plan.cnn.backward(values, tf.reshape(mwp, tf.shape(features)))[plan.cnn.target_key]
        summed = tf.reduce_sum(below, axis=-1) if below.shape.rank == 4 else below
        maps.append(tf.reshape(summed, tf.concat([[batch, steps], tf.shape(summed)[1:]], axis=0)))
    return tf.stack(maps, axis=-1)


def _step(step, steps):
    step = steps - 1 if step is None else int(step)
    if not -steps <= step < steps:
        raise ValueError(f"step {step} is outside a clip of {steps} frames; pass a step in [0, {steps - 1}] (or -1, the last).")
    return step % steps


def _rule(rule):
    if rule not in RULES:
        raise ValueError(f"Unknown EB-R rule {rule!r}; use 'authors' (the authors' Caffe code, the default) or "
                         "'conserving' (ours: gates as weights, mass conserved through the cell and the hidden state).")
    return rule


def _run(model, clips, classes, layer, step, contrastive, at_input=False, rule=DEFAULT_RULE):
    rule = _rule(rule)
    plan = _plan(model, layer)
    clips = tf.convert_to_tensor(clips, tf.float32)
    classes = tf.convert_to_tensor(classes, tf.int32)
    return plan.function(clips, classes, int(classes.shape[1]), _step(step, clips.shape[1]), contrastive, at_input,
                         rule).numpy()


def excitation_backprop_rnn(model, clips, classes, layer=DEFAULT_LAYER, step=None, rule=DEFAULT_RULE):
    """EB-R maps (batch, T, h, w, n) of a CNN-LSTM: winning probabilities normalised over space and time (eq. 7.5).

    ``classes`` (batch, n) int, queried at time ``step`` (default the last, Algorithm 3 step 1); ``rule``:
    ``"authors"`` (the authors' Caffe code, default) or ``"conserving"`` (ours), see the module's docstring.
    """
    return _run(model, clips, classes, layer, step, False, rule=rule)


def contrastive_excitation_backprop_rnn(model, clips, classes, layer=DEFAULT_LAYER, step=None, rule=DEFAULT_RULE):
    """cEB-R maps (batch, T, h, w, n): ``P_N - P̄_N`` (eq. 7.7) taken down each frame's CNN (eq. 7.9); signed."""
    return _run(model, clips, classes, layer, step, True, rule=rule)


def input_winning_probabilities(model, clips, classes, step=None, contrastive=False, rule=DEFAULT_RULE):
    """The MWP (batch, T, D, n) at the LSTM's input (``fc2``) after eq. 7.5 (or eq. 7.7): the maps before the CNN."""
    return _run(model, clips, classes, DEFAULT_LAYER, step, contrastive, at_input=True, rule=rule)


# ---------------------------------------------------------------- gradient saliency
def _gradient_maps(model, inputs, classes, step=None):
    graph = _graph.flat_graph(model)
    key = _graph.logits_key(graph, model)
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    classes = tf.convert_to_tensor(classes, tf.int32)
    maps = []
    for column in range(classes.shape[1]):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            logits = _graph.run(graph, inputs, until=key)[key]
            if step is not None:
                logits = logits[:, step]
            score = tf.reduce_sum(logits * tf.one_hot(classes[:, column], logits.shape[-1]))
        maps.append(tf.reduce_max(tf.abs(tape.gradient(score, inputs)), axis=-1))
    return tf.stack(maps, axis=-1).numpy()


def gradient_saliency(model, images, classes):
    """BP (Simonyan et al. 2014): ``max_channels |d logit / d image|`` (batch, H, W, n) of an image model."""
    return _gradient_maps(model, images, classes)


def gradient_saliency_rnn(model, clips, classes, step=None):
    """BP-R: ``max_channels |d logit_n / d frame_t|`` (batch, T, H, W, n), the step-n logit of a CNN-LSTM through time."""
    recurrent.check_cnn_lstm(model)
    return _gradient_maps(model, clips, classes, _step(step, int(clips.shape[1])))


__all__ = ["RULES", "DEFAULT_RULE", "gate_signals", "lstm_excitation_authors", "lstm_backward_authors",
           "lstm_backward_conserving", "excitation_backprop_rnn", "contrastive_excitation_backprop_rnn", "gradient_saliency", "gradient_saliency_rnn",
           "input_winning_probabilities", "lstm_states", "lstm_excitation", "temporal_normalization"]
