"""The thesis's face pre-processing (§3.6.2), one named step each: detect, take the largest face, crop, grey, equalise.

Face detection uses OpenCV's Haar cascade (Viola and Jones; ``haarcascade_frontalface_default.xml``)
where the installed OpenCV has ``cv2.CascadeClassifier`` and the cascade file (OpenCV 4.x wheels ship
both under ``cv2.data.haarcascades``; OpenCV 5 moved the class to opencv-contrib and its wheels ship no
cascade file: pass ``cascade_path``).  The thesis used Chen et al.'s joint cascade detector.  The
stand-in's known face box (``mindgap.data.faces``, the AFEW layout's sidecar boxes) can stand in
for a detector.  Boxes are mindgap's pixel-edge ``(x_min, y_min, x_max, y_max)`` with exclusive ends.
"""

import os

import cv2
import numpy as np

FRONTAL_FACE = "haarcascade_frontalface_default.xml"
FACE_SIZE = 48  # FER2013's side


def load_cascade(path=None):
    """OpenCV's frontal-face Haar cascade (``path``, default the one under ``cv2.data.haarcascades``)."""
    if not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved it to opencv-contrib); "
                           "install opencv-contrib-python-headless or OpenCV 4.x, or use the known face boxes.")
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = os.fspath(path) if path is not None else os.path.join(folder, FRONTAL_FACE)
    if not os.path.isfile(path):
        raise RuntimeError(f"No Haar cascade file at {path!r} (OpenCV {cv2.__version__}'s wheel ships none); pass the "
                           f"path of {FRONTAL_FACE} (OpenCV 4.x wheels carry it in cv2/data/), or use the known face boxes.")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"{path!r} is not a Haar cascade OpenCV can read.")
    return cascade


def detect_faces(frame, cascade, *, scale_factor=1.1, min_neighbors=4, min_size=24):
    """Every face the cascade finds in ``frame`` (BGR or grey) as (n, 4) float32 pixel-edge boxes."""
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    found = cascade.detectMultiScale(grey, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size))
    boxes = np.asarray(found, np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # (x, y, w, h) → (x_min, y_min, x_max, y_max)
    return boxes


def largest_face(boxes):
    """The box of largest area among ``boxes`` (n, 4), or None when there is none."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return None
    return boxes[int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))]


def crop_face(frame, box, size=FACE_SIZE):
    """The pixels of ``box`` (clipped to the frame, rounded outwards to whole pixels) resized to ``size``²."""
    height, width = frame.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"Face box {np.asarray(box).tolist()} lies outside the {width}x{height} frame.")
    crop = frame[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if crop.shape[0] > size or crop.shape[1] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def to_grayscale(image):
    """BGR (or already grey) → one grey channel, uint8."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def equalize_histogram(grey):
    """OpenCV's global histogram equalisation of a uint8 grey image."""
    return cv2.equalizeHist(np.ascontiguousarray(grey, np.uint8))


def preprocess_face(frame, box, size=FACE_SIZE):
    """The thesis's chain on one frame: crop of ``box``, resize to ``size``², grey, histogram equalisation."""
    return equalize_histogram(to_grayscale(crop_face(frame, box, size)))


def face_boxes(frames, cascade=None, known=None):
    """One box per frame: ``known`` boxes, or the largest Haar detection.

    Frames where the cascade finds nothing take the box of the nearest frame that has one; a clip without any
    detection takes whole frames.  Returns ((T, 4) boxes, number of frames with a detection of their own).
    """
    if known is not None:
        return np.asarray(known, np.float32).reshape(len(frames), 4), len(frames)
    if cascade is None:
        raise ValueError("Pass a Haar cascade (load_cascade()) or the known face boxes.")
    found = [largest_face(detect_faces(frame, cascade)) for frame in frames]
    detected = [index for index, box in enumerate(found) if box is not None]
    if not detected:
        return np.asarray([[0, 0, frame.shape[1], frame.shape[0]] for frame in frames], np.float32), 0
    boxes = [found[min(detected, key=lambda other: abs(other - index))] for index in range(len(frames))]
    return np.asarray(boxes, np.float32), len(detected)
