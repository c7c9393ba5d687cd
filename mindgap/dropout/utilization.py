"""How much of the dropout layer a model uses (Table 5.3), and how it copes with neurons switched off (Figure 5.5).

All functions take numpy arrays at the dropout layer: ``activations`` (images, N) and ``p_eb`` (images, N), the EB
probabilities of each image's true class. Every measure is computed per test image and averaged over the images.

* **neurons ON** (Mittal et al. 2018's average percentage of zeros, turned
  round): the number of neurons with a positive activation;
* **peak p_EB**: the largest p_EB of the image;
* **entropy of p_EB** (nats): ``-sum_i p_i ln p_i``, higher when the evidence
  is spread over more neurons (at most ln N);
* **entropy of activations** (nats): the same of the activations divided by their sum, ``a_i / sum_j a_j`` (the
  analogue the thesis pairs with the entropy of p_EB; an image without any active neuron counts 0);
* **conservative filters** (Ma et al. 2017): neurons whose incoming weights (``fc1``'s kernel column and bias) moved
  by less than Δ in training, ``||w_hat_k - w_k|| < Δ``; Δ is the caller's and must be stated.

Compression (§5.2.4): at test time neurons are switched off (activation 0, no rescaling): the most relevant first
until their cumulative p_EB reaches p_c, the least relevant first while it stays within p_c, or k at random.
"""

import numpy as np

COMPRESSION_LEVELS = tuple(round(0.05 * step, 2) for step in range(20))  # p_c = 0, 0.05, ..., 0.95 (Figure 5.5)


def _rows(values):
    values = np.asarray(values, np.float64)
    if values.ndim != 2:
        raise ValueError(f"Expected an array (images, neurons), got shape {values.shape}.")
    return values


def neurons_on(activations):
    """Mean number of neurons with a positive activation per image."""
    return float((_rows(activations) > 0).sum(axis=1).mean())


def peak_probability(p_eb):
    """Mean over images of the largest p_EB."""
    return float(_rows(p_eb).max(axis=1).mean())


def distribution_entropy(distributions):
    """Mean over rows of ``-sum p ln p`` (nats, 0 ln 0 = 0); rows are normalised to sum 1 first (all-zero rows: 0)."""
    rows = np.clip(_rows(distributions), 0.0, None)
    totals = rows.sum(axis=1, keepdims=True)
    shares = np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)
    logs = np.log(shares, out=np.zeros_like(shares), where=shares > 0)
    return float(-(shares * logs).sum(axis=1).mean())


def activation_entropy(activations):
    """Mean entropy (nats) of each image's activations divided by their sum."""
    return distribution_entropy(activations)


def conservative_filters(initial_kernel, final_kernel, delta, initial_bias=None, final_bias=None):
    """The number of neurons k whose incoming weights changed by ``||w_hat_k - w_k|| < delta`` (Ma et al. 2017).

    Kernels (inputs, N) of a Dense layer; the bias, if given, is part of each neuron's weights.
    """
    return int((weight_changes(initial_kernel, final_kernel, initial_bias, final_bias) < delta).sum())


def weight_changes(initial_kernel, final_kernel, initial_bias=None, final_bias=None):
    """``||w_hat_k - w_k||`` per neuron (the quantity :func:`conservative_filters` thresholds)."""
    change = np.square(np.asarray(final_kernel, np.float64) - np.asarray(initial_kernel, np.float64)).sum(axis=0)
    if initial_bias is not None and final_bias is not None:
        change = change + np.square(np.asarray(final_bias, np.float64) - np.asarray(initial_bias, np.float64))
    return np.sqrt(change)


def utilization(activations, p_eb):
    """The four per-image measures of Table 5.3 (conservative filters need the weights: separate)."""
    return {"neurons_on": neurons_on(activations), "peak_p_eb": peak_probability(p_eb),
            "activation_entropy": activation_entropy(activations), "p_eb_entropy": distribution_entropy(p_eb)}


def relevance_keep_masks(p_eb, level, most_relevant=True):
    """Which neurons stay on (bool, images × N) when neurons are switched off by relevance up to cumulative p_EB ``level``.

    ``most_relevant``: in decreasing p_EB, a neuron is switched off while the p_EB of those switched off before it is
    below ``level`` (so the smallest set reaching ``level``; none at 0).  Otherwise, in increasing p_EB, a neuron is
    switched off while the cumulative p_EB including it stays within ``level`` (none at 0).  Ties go by neuron index
    (stable sort).
    """
    p_eb = _rows(p_eb)
    order = np.argsort(-p_eb if most_relevant else p_eb, axis=1, kind="stable")
    ranked = np.take_along_axis(p_eb, order, axis=1)
    cumulative = np.cumsum(ranked, axis=1)
    if most_relevant:
        off_ranked = (cumulative - ranked) < level - 1e-12
    else:
        off_ranked = (cumulative <= level + 1e-12) & (level > 0)
    keep = np.ones_like(p_eb, dtype=bool)
    np.put_along_axis(keep, order, ~off_ranked, axis=1)
    return keep


def random_keep_masks(rng, num_images, num_neurons, count):
    """``count`` neurons switched off at random in each image (bool keep masks, images × N)."""
    scores = rng.random((num_images, num_neurons))
    ranks = scores.argsort(axis=1).argsort(axis=1)
    return ranks >= count
