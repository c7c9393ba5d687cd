"""Retaining probabilities of the dropout family: eq. (5.1), its mirror, standout and the curriculum schedule.

Bargal, "Grounding deep models of visual data", PhD thesis, Boston University 2019, chapter 5 (Zunino, Bargal et al.,
"Excitation Dropout", arXiv:1805.09092).  Every function here is the probability of **keeping** a neuron (the thesis's
p and P), never the dropout rate; they work on numpy arrays and on tensors.
"""

import keras
import numpy as np

CURRICULUM_GAMMA = 5e-4  # Morerio et al. 2017, as the thesis fixes it (§5.2.2)
# Ba & Frey 2013's standout with the standout network's weights tied to the layer's: pi = alpha * w + beta.
STANDOUT_ALPHA = 1.0
STANDOUT_BETA = 0.0


def check_base_retain(base_retain):
    """``base_retain`` (P) as a float in (0, 1], or a one-line ``ValueError``."""
    if isinstance(base_retain, bool) or not isinstance(base_retain, (int, float, np.floating)) or not 0 < base_retain <= 1:
        raise ValueError(f"base_retain (P, the probability of keeping a neuron) must be in (0, 1], got {base_retain!r}.")
    return float(base_retain)


def retaining_probability(p_eb, num_neurons, base_retain):
    """Eq. (5.1): the probability of keeping a neuron whose EB probability is ``p_eb``.

        p = 1 - (1 - P) (N - 1) p_EB / (((1 - P) N - 1) p_EB + P)

    with N = ``num_neurons`` in the layer and P = ``base_retain``.  p = 1 at
    p_EB = 0, p = P at p_EB = 1/N (uniform evidence) and p = 0 at p_EB = 1:
    the most relevant neurons are the most likely to be dropped (thesis §5.1,
    Figure 5.2).  Element-wise on a numpy array or a tensor.
    """
    base_retain = check_base_retain(base_retain)
    if int(num_neurons) < 2:
        raise ValueError(f"num_neurons (N) must be at least 2, got {num_neurons!r}.")
    if base_retain == 1.0:
        return 1.0 + 0.0 * p_eb  # no dropout (the formula is 0/0 at p_EB = 1)
    drop = 1.0 - base_retain
    numerator = drop * (num_neurons - 1) * p_eb
    # The denominator is linear in p_EB: P at 0, (N - 1)(1 - P) at 1, so positive on [0, 1] for P < 1.
    return 1.0 - numerator / ((drop * num_neurons - 1.0) * p_eb + base_retain)


def mirrored_retaining_probability(p_eb, num_neurons, base_retain):
    """The ``mirrored_excitation`` variant (ours): eq. (5.1) turned round, so that the *least* relevant neurons are dropped.

        p_adaptive(p_EB; P) = 1 - p_(5.1)(p_EB; 1 - P)

    p = 0 at p_EB = 0, p = P at p_EB = 1/N and p = 1 at p_EB = 1: what Excitation Dropout keeps with probability p,
    this variant drops with the same probability (at the chapter's P = 0.5 exactly): only the choice of neurons
    differs from eq. 5.1.  Not the thesis's "Adaptive Dropout" (Ba & Frey 2013,
    :func:`standout_retaining_probability`).  P = 1 keeps every neuron.
    """
    base_retain = check_base_retain(base_retain)
    if base_retain == 1.0:
        return 1.0 + 0.0 * p_eb
    return 1.0 - retaining_probability(p_eb, num_neurons, 1.0 - base_retain)


def standout_retaining_probability(pre_activations, alpha=STANDOUT_ALPHA, beta=STANDOUT_BETA):
    """Adaptive Dropout, "standout" (Ba & Frey, NIPS 2013), with the standout network sharing the layer's weights.

        p_j = sigmoid(alpha * (W x + b)_j + beta)

    ``pre_activations`` = ``W x + b`` of the layer whose units are dropped (before its ReLU): a unit that fires
    strongly is kept more often.  Ba & Frey tie the standout network's weights to the network's as
    ``pi = alpha * w + beta``; here ``beta`` is added once to the pre-activation (the brief's reading), not
    ``beta * sum_i x_i``.  Element-wise on a numpy array or a tensor.
    """
    return keras.ops.sigmoid(alpha * pre_activations + beta)


def curriculum_retaining_probability(step, base_retain, gamma=CURRICULUM_GAMMA):
    """Curriculum Dropout (Morerio et al., ICCV 2017): theta(t) = (1 - P) exp(-gamma t) + P.

    The retaining probability starts at 1 (no dropout) at training step t = 0
    and decays towards P; the thesis fixes gamma = 5e-4 (§5.2.2).
    """
    base_retain = check_base_retain(base_retain)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}.")
    return (1.0 - base_retain) * keras.ops.exp(-gamma * keras.ops.cast(step, "float32")) + base_retain
