"""Training labels from crowd votes: the majority, or Probabilistic Label Drawing (Barsoum et al. 2016).

A record may carry ``votes`` (one non-negative count per class, e.g. FER+'s crowd tags).  ``"majority"`` trains on
``record.label`` (the layout sets it to the most voted class); ``"probabilistic"`` draws a label from the record's
vote distribution, anew for every image in every epoch (Barsoum et al., *Training deep networks for facial expression
recognition with crowd-sourced label distribution*, ICMI 2016, §3.3; the thesis §3.6.2).  A record without votes
counts as all its votes on its label, so its drawn label is always that label.
"""

import numpy as np
import tensorflow as tf

LABEL_DRAWINGS = ("majority", "probabilistic")


def vote_distributions(records, num_classes):
    """(n, num_classes) float32: each record's votes divided by their sum (one-hot of the label without votes)."""
    distributions = np.zeros((len(records), num_classes), np.float32)
    for index, record in enumerate(records):
        votes = getattr(record, "votes", None)
        if votes is None:
            distributions[index, record.label] = 1.0
            continue
        votes = np.asarray(votes, np.float64)
        if votes.shape != (num_classes,) or not np.all(np.isfinite(votes)) or votes.min() < 0 or votes.sum() <= 0:
            raise ValueError(f"{record.path}: votes {votes.tolist()} must be {num_classes} finite non-negative counts "
                             "with a positive sum.")
        distributions[index] = votes / votes.sum()
    return distributions


def draw_label(distribution, seed):
    """One class index drawn from ``distribution`` (num_classes,) with a stateless ``seed`` (2,) (a tensor op)."""
    logits = tf.math.log(tf.maximum(distribution, 0.0))[tf.newaxis]  # log 0 = -inf: a class without votes is never drawn
    return tf.cast(tf.random.stateless_categorical(logits, 1, seed)[0, 0], tf.int32)
