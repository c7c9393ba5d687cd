"""Figures: CAM overlays, the all-class CAM grid (paper Figure 3), IoU-vs-threshold curves (Figure 4)."""

import errno
import math
import sys
import textwrap

import cv2
import matplotlib

if "ipykernel" not in sys.modules:  # never a GUI window; a notebook keeps its inline backend, so its figures show
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mindgap import storage  # noqa: E402
from mindgap.cam import upsample_map  # noqa: E402
from mindgap.data.pipeline import deprocess  # noqa: E402

TRUE_BOX_COLOUR = (0, 255, 0)
CAM_BOX_COLOUR = (255, 0, 0)


def overlay_cam(image, cam, vmax=None, opacity=0.5):
    """RGB uint8 image with a CAM (any resolution, upsampled bilinearly) blended over it as a jet heat map.

    The CAM's positive part is divided by ``vmax`` (default: its own maximum).
    """
    image = np.asarray(image, np.uint8)
    cam = np.maximum(np.asarray(cam, np.float32), 0.0)
    if cam.shape != image.shape[:2]:
        cam = upsample_map(cam, image.shape[:2])
    peak = float(cam.max()) if vmax is None else float(vmax)
    scaled = np.clip(cam / peak, 0, 1) if peak > 0 else np.zeros_like(cam)
    heat = cv2.applyColorMap(np.round(scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return np.round((1 - opacity) * image + opacity * heat).astype(np.uint8)


def draw_box(image, box, colour, thickness=1):
    """Draw a pixel-edge box (exclusive ends) on a copy of an RGB image."""
    image = np.ascontiguousarray(image).copy()
    x_min, y_min, x_max, y_max = (int(round(value)) for value in box)
    if x_max > x_min and y_max > y_min:
        cv2.rectangle(image, (x_min, y_min), (x_max - 1, y_max - 1), colour, thickness)
    return image


def display_image(preprocessed):
    """Undo InceptionV3 preprocessing: [-1, 1] float → RGB uint8."""
    return deprocess(preprocessed)


def plot_cam_grid(image, cams, class_names, path, title="", highlight=None):
    """All class CAMs of one image, each divided by the same maximum (paper Figure 3)."""
    cams = np.maximum(np.asarray(cams, np.float32), 0)
    shared_max = float(cams.max())
    count = cams.shape[-1] + 1
    columns = min(count, 8)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("image", fontsize=7)
    for index in range(cams.shape[-1]):
        axis = axes.flat[index + 1]
        axis.imshow(cams[..., index], cmap="jet", vmin=0, vmax=shared_max if shared_max > 0 else 1)
        weight = "bold" if highlight is not None and index == highlight else "normal"
        axis.set_title(class_names[index][:14], fontsize=7, fontweight=weight)
    return save_figure(figure, path, f"{title}  (shared max {shared_max:.3g})")


def plot_iou_curves(curves, thresholds, path, title="Share of images with IoU > 0.5"):
    """One line per model: % correctly localized against the CAM threshold (paper Figure 4)."""
    figure, axis = plt.subplots(figsize=(6, 4))
    percent = 100 * np.asarray(thresholds)
    for label, curve in curves.items():
        axis.plot(percent, 100 * np.asarray(curve), label=label)
    axis.set_xlabel("threshold (% of the CAM's max)")
    axis.set_ylabel("% of images with IoU > 0.5")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    return save_figure(figure, path)


SNAPSHOT_PANEL_SIDE = 192  # px of each panel of a CAM snapshot
_CAPTION_HEIGHT = 18
_CAPTION_SCALE = 0.42


def snapshot_grid(rows, title=""):
    """Rows of (panel, caption) pairs as one RGB uint8 image: panels resized to :data:`SNAPSHOT_PANEL_SIDE` px (pixels
    kept square and sharp when enlarged), each under its caption, the ``title`` on top.  Drawn with OpenCV: a snapshot
    is written every epoch, and a matplotlib figure with titles cost 1.3 CPU-s each (a tenth of a quick model's epoch)."""
    side, caption_height = SNAPSHOT_PANEL_SIDE, _CAPTION_HEIGHT
    columns = max(len(row) for row in rows)
    title_height = 2 * caption_height if title else 0
    grid = np.full((title_height + len(rows) * (caption_height + side + 4), columns * (side + 4), 3), 255, np.uint8)
    if title:
        _put_caption(grid, title, 0, 0, grid.shape[1], title_height, scale=0.55)
    for row_index, row in enumerate(rows):
        top = title_height + row_index * (caption_height + side + 4)
        for column, (panel, caption) in enumerate(row):
            left = column * (side + 4) + 2
            panel = np.asarray(panel, np.uint8)
            shrinking = panel.shape[0] > side or panel.shape[1] > side
            grid[top + caption_height:top + caption_height + side, left:left + side] = cv2.resize(
                panel, (side, side), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST)
            _put_caption(grid, caption, left, top, side, caption_height)
    return grid


def _put_caption(image, text, left, top, width, height, scale=_CAPTION_SCALE):
    """``text`` centred in the box (left, top, width, height) of ``image``, in black, shrunk to fit its width."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_width, text_height), _ = cv2.getTextSize(text, font, scale, 1)
    if text_width > width - 4:
        scale *= (width - 4) / text_width
        (text_width, text_height), _ = cv2.getTextSize(text, font, scale, 1)
    origin = (left + max(0, (width - text_width) // 2), top + (height + text_height) // 2)
    cv2.putText(image, text, origin, font, scale, (0, 0, 0), 1, cv2.LINE_AA)


def plot_snapshot_rows(rows, path, title=""):
    """Rows of (image with boxes, true-class CAM, predicted-class CAM) panels with their captions, as a PNG at ``path``
    (:func:`snapshot_grid`)."""
    return save_rgb(snapshot_grid(rows, title), path)


def save_figure(figure, path, title="", title_size=8, dpi=100):
    """Lay out, title (if any), write and close a matplotlib figure; returns ``path``."""
    if title:
        figure.suptitle(title, fontsize=title_size)
    figure.tight_layout()
    storage.savefig(figure, path, dpi=dpi)  # atomically: a kill leaves the previous figure, never half of one
    plt.close(figure)
    return path


def save_rgb(image, path):
    """Write an RGB uint8 image as PNG; ``OSError`` if it could not be written (OpenCV only returns False)."""
    if not cv2.imwrite(str(path), np.asarray(image, np.uint8)[..., ::-1]):
        raise OSError(errno.EIO, f"could not write {path}", str(path))
    return path


def plot_evidence_patches(patches, scores, classes, class_names, path, title="", methods=("ceb",)):
    """Guided Zoom's evidence of one image (thesis Figure 6.2): one row per top-k class, one column per
    grounding method and erasing round, each patch with the Evidence CNN's probability of its row's class.

    ``patches`` (k, M, L+1, side, side, 3) in [-1, 1]; ``scores`` (k, M, L+1); ``classes`` (k,) class indices.
    """
    rows, columns = len(classes), patches.shape[1] * patches.shape[2]
    figure, axes = plt.subplots(rows, columns, figsize=(1.3 * columns + 1.2, 1.35 * rows + 0.5), squeeze=False)
    for row, class_index in enumerate(classes):
        for method_index in range(patches.shape[1]):
            for level in range(patches.shape[2]):
                axis = axes[row, method_index * patches.shape[2] + level]
                axis.imshow(np.clip((patches[row, method_index, level] + 1.0) / 2.0, 0.0, 1.0))
                axis.set_title(f"{methods[method_index]} l={level}: {scores[row, method_index, level]:.2f}", fontsize=6)
                axis.set_xticks([])
                axis.set_yticks([])
        axes[row, 0].set_ylabel(class_names[class_index], fontsize=7)
    return save_figure(figure, path, title, title_size=7)


def plot_clip_grounding(frames, maps, labels, path, title="", segments=None, note=""):
    """A clip's frames, one row of overlays per queried class, and each class's score over time (thesis Figure 7.5).

    Args:
        frames: (T, H, W, 3) RGB uint8.
        maps: one (T, h, w) map per queried class (any resolution; the positive part is shown,
            one colour scale per row); the sum of each frame's map is its temporal score.
        labels: a row label per map.
        segments: optional localized ``(start, end)`` per map, shaded on the curve.
    """
    frames = np.asarray(frames, np.uint8)
    steps = len(frames)
    rows = len(maps) + 1
    figure = plt.figure(figsize=(max(6.0, 0.9 * steps), 0.95 * rows + 2.2))
    grid = figure.add_gridspec(rows + 1, steps, height_ratios=[1] * rows + [1.8])
    for step in range(steps):
        axis = figure.add_subplot(grid[0, step])
        axis.imshow(frames[step])
        axis.set_title(str(step + 1), fontsize=7)
        axis.axis("off")
    curve = figure.add_subplot(grid[rows, :])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (values, label) in enumerate(zip(maps, labels), start=1):
        values = np.asarray(values, np.float32)
        peak = max(float(values.max()), 1e-12)
        scores = values.reshape(steps, -1).sum(axis=1)
        for step in range(steps):
            axis = figure.add_subplot(grid[row, step])
            axis.imshow(overlay_cam(frames[step], values[step], vmax=peak))
            axis.set_xticks([])
            axis.set_yticks([])
            if step == 0:
                axis.set_ylabel(label, fontsize=7)
        colour = colours[(row - 1) % len(colours)]
        curve.plot(np.arange(1, steps + 1), scores, marker="o", markersize=3, color=colour, label=label)
        if segments is not None and segments[row - 1] is not None:
            start, end = segments[row - 1]
            curve.axvspan(start + 0.5, end + 0.5, color=colour, alpha=0.12)
    curve.axhline(0, color="black", linewidth=0.6)
    curve.set_xlim(0.5, steps + 0.5)
    curve.set_xticks(np.arange(1, steps + 1, max(1, steps // 16)))
    curve.set_xlabel("frame", fontsize=7)
    if note:
        curve.set_title(textwrap.fill(note, max(60, int(16 * figure.get_figwidth()))), fontsize=7)
    curve.set_ylabel("sum of the map", fontsize=7)
    curve.legend(fontsize=7)
    return save_figure(figure, path, title, title_size=9, dpi=110)
