"""Per-frame features at named layers, normalised (SSR + L2) and concatenated; per-video statistics (thesis §3.6.2).

For each frame, the output of each named layer (a 4-D output is averaged over space first) is signed-square-rooted and
L2-normalised on its own, then the layers are concatenated (the thesis: fc5 of VGG13 + fc7 of VGG16 + pool of a
ResNet).  A video is the concatenation of the mean, the variance, the minimum and the maximum of its frames' features,
dimension by dimension (4× the dimension), L2-normalised ("we now normalize this encoded feature").  The baseline's
features are uniform LBP histograms on a grid of cells of the face crop (our stand-in for the challenge's LBP-TOP).
"""

import keras
import numpy as np
from skimage.feature import local_binary_pattern

from mindgap.data.pipeline import preprocess

STATISTICS = ("mean", "variance", "min", "max")


def signed_square_root(features):
    """sign(x) · sqrt(|x|), element-wise."""
    features = np.asarray(features, np.float64)
    return np.sign(features) * np.sqrt(np.abs(features))


def l2_normalize(features, epsilon=1e-12):
    """Each row (last axis) divided by its L2 norm (rows of zeros stay zero)."""
    features = np.asarray(features, np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), epsilon)


def ssr_l2(features):
    """Signed square root, then L2 normalisation of each row."""
    return l2_normalize(signed_square_root(features))


def layer_model(model, layers):
    """A model from ``model``'s input to the named ``layers``' outputs, each averaged over space when 4-D."""
    outputs = []
    for name in layers:
        output = model.get_layer(name).output
        outputs.append(keras.layers.GlobalAveragePooling2D(name=f"{name}_pooled")(output) if len(output.shape) == 4 else output)
    return keras.Model(model.inputs, outputs, name=f"{model.name}-features")


def frame_features(model, faces, layers, batch_size=256):
    """(n, D) features of ``faces`` (n, s, s) grey or (n, s, s, 3) uint8: each layer SSR + L2, concatenated in order."""
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = np.repeat(faces[..., None], 3, axis=-1)
    extractor = layer_model(model, layers)
    outputs = extractor.predict(preprocess(faces).numpy(), batch_size=batch_size, verbose=0)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return np.concatenate([ssr_l2(output) for output in outputs], axis=1)


def video_statistics(features):
    """(T, D) frame features → (4·D,): mean, variance, minimum and maximum over the frames, concatenated in that order."""
    features = np.asarray(features, np.float64)
    return np.concatenate([features.mean(0), features.var(0), features.min(0), features.max(0)])


def encode_videos(features_per_video):
    """[(T_i, D)] → (n, 4·D): each video's statistics, L2-normalised."""
    return l2_normalize(np.stack([video_statistics(features) for features in features_per_video]))


def lbp_histograms(faces, grid=4, points=8, radius=1):
    """(n, grid²·(points+2)) uniform-LBP histograms of ``faces`` (n, s, s) grey: one normalised histogram per cell."""
    bins = points + 2
    rows = []
    for face in np.asarray(faces):
        codes = local_binary_pattern(face, points, radius, method="uniform")
        cells = [cell for band in np.array_split(codes, grid, axis=0) for cell in np.array_split(band, grid, axis=1)]
        rows.append(np.concatenate([np.bincount(cell.astype(int).ravel(), minlength=bins) / cell.size for cell in cells]))
    return np.asarray(rows)
