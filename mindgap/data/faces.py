"""The embedded emotion stand-in: faces drawn from parts, in the exact formats of FER2013/FER+ and AFEW.

**It tests the pipeline, not human emotion.**  No faces data set ships with the
project's dependencies, so this module draws cartoon faces with OpenCV (outline,
hair, eyes, brows, nose, mouth, cheek lines) on crops of the project's photos
(scikit-learn's two and scikit-image's colour photos, ``mindgap.data.video.load_photos``).
Each face has an *identity* (face width and height, skin tone, hair, eye spacing
and size, brow thickness, nose length, mouth width and height on the face) and an
*expression*: the FACS action units of one of the seven emotions at a graded
intensity (:data:`EMOTION_UNITS`, after Ekman and Friesen's prototypes: happy
AU6+12, sad AU1+4+15, surprise AU1+2+5+26, fear AU1+2+4+5+20+26, anger
AU4+5+7+23, disgust AU9+10+15 with AU4).  What a classifier learns here is which
drawn strokes go with which label; nothing about real faces.

* **Web images** (``web/``, FER2013's ``fer2013.csv`` and FER+'s ``fer2013new.csv``): one face at its apex filling a
  48×48 grey image.  Some are ambiguous, a blend of the emotion and the one crowds confuse it with
  (:data:`CONFUSED_WITH`: fear↔surprise, disgust↔anger, sad↔neutral, and happy with neutral); ten simulated annotators
  vote from a distribution that follows the blend (plus a little noise and, at low intensity, neutral), and the
  ``emotion`` column holds the emotion the image was drawn for.
* **Videos** (``video/``, AFEW's ``Train_AFEW/<Emotion>/<clip>.avi``, ``Val_AFEW``, ``Test_AFEW``): a clip of
  ``frames`` frames in which the expression rises from neutral (onset), holds (apex) and falls part of the way back
  (offset) at a milder peak than the web images, while the head drifts, turns and changes size and the light changes
  in strength and direction; ``<clip>.json`` beside each file gives the face box of every frame (the stand-in's known
  box).

Command line: ``python -m mindgap.data.faces OUT_DIR [--seed 0] ...``
"""

import csv
import dataclasses
import json
import os
import sys

import cv2
import numpy as np

from mindgap.data.emotions import EMOTIONS, FER2013_ORDER, FERPLUS_COLUMNS
from mindgap.data.generated import known_settings, settings_parser
from mindgap.data.video import load_photos
from mindgap.storage import atomic_folder

SETTINGS_FILE = "mindgap_faces.json"
RENDERER_VERSION = 1
WEB_DIR, VIDEO_DIR = "web", "video"
AFEW_SPLITS = {"train": "Train_AFEW", "val": "Val_AFEW", "test": "Test_AFEW"}
FER_USAGES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
ACTION_UNITS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU15", "AU20", "AU23", "AU26")
# Each emotion's prototype: action unit → strength at full intensity.
EMOTION_UNITS = {
    "angry": {"AU4": 1.0, "AU5": 0.3, "AU7": 0.9, "AU23": 1.0},
    "disgust": {"AU4": 0.5, "AU9": 1.0, "AU10": 1.0, "AU15": 0.5},
    "fear": {"AU1": 1.0, "AU2": 0.6, "AU4": 0.8, "AU5": 1.0, "AU20": 1.0, "AU26": 0.5},
    "happy": {"AU6": 1.0, "AU12": 1.0, "AU26": 0.35},
    "neutral": {},
    "sad": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0, "AU7": 0.25},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0},
}
CONFUSED_WITH = {"fear": "surprise", "surprise": "fear", "disgust": "angry", "angry": "disgust", "sad": "neutral",
                 "neutral": "sad", "happy": "neutral"}
DEFAULTS = dict(seed=0, web_per_class=(60, 10, 10), clips_per_class=(8, 5, 8), frames=16, frame_size=(120, 96),
                web_size=48, ambiguous_fraction=0.35, annotators=10)
_SKIN = np.array([[200, 215, 240], [150, 180, 225], [110, 150, 200], [70, 105, 160], [45, 70, 115]], np.float64)  # BGR
_HAIR = np.array([[20, 20, 25], [30, 50, 90], [60, 110, 170], [130, 130, 135], [15, 30, 60]], np.float64)
_SHIFT = 4  # sub-pixel bits of OpenCV's drawing calls
_SCALE = 1 << _SHIFT


@dataclasses.dataclass(frozen=True)
class Identity:
    """What stays the same across a person's images: shape, tone and proportions (fractions of the face box)."""

    width: float  # face half-width over the box's half-width
    height: float
    skin: tuple
    hair: tuple
    hair_style: int  # 0 none, 1 cap, 2 long
    eye_spacing: float
    eye_size: float
    eye_height: float
    brow_thickness: float
    nose_length: float
    mouth_width: float
    mouth_height: float


def random_identity(rng):
    """An identity drawn at random (tone from five skin colours, blended)."""
    tone = rng.uniform(0, len(_SKIN) - 1)
    skin = _SKIN[int(tone)] * (1 - tone % 1) + _SKIN[min(int(tone) + 1, len(_SKIN) - 1)] * (tone % 1)
    return Identity(width=rng.uniform(0.78, 0.92), height=rng.uniform(0.9, 1.0), skin=tuple(skin + rng.normal(0, 6, 3)),
                    hair=tuple(_HAIR[rng.integers(len(_HAIR))]), hair_style=int(rng.integers(3)),
                    eye_spacing=rng.uniform(0.3, 0.4), eye_size=rng.uniform(0.15, 0.2), eye_height=rng.uniform(-0.2, -0.08),
                    brow_thickness=rng.uniform(0.045, 0.075), nose_length=rng.uniform(0.2, 0.32),
                    mouth_width=rng.uniform(0.26, 0.34), mouth_height=rng.uniform(0.45, 0.56))


def expression_units(emotion, intensity, blend=None, blend_weight=0.0):
    """{action unit: strength} of ``emotion`` at ``intensity`` in [0, 1], mixed with ``blend`` at ``blend_weight``."""
    units = {unit: 0.0 for unit in ACTION_UNITS}
    for name, weight in ((emotion, 1.0 - blend_weight), (blend, blend_weight)):
        for unit, strength in EMOTION_UNITS.get(name, {}).items() if name else ():
            units[unit] += weight * strength * intensity
    return units


class _Frame:
    """Maps face coordinates (u, v in about [-1, 1], v down) to pixels: centre, half-axes and a turn of the head."""

    def __init__(self, box, angle):
        x0, y0, x1, y1 = box
        self.centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        self.half = np.array([(x1 - x0) / 2, (y1 - y0) / 2])
        radians = np.deg2rad(angle)
        self.rotation = np.array([[np.cos(radians), -np.sin(radians)], [np.sin(radians), np.cos(radians)]])

    def points(self, uv):
        xy = self.centre + (np.asarray(uv, np.float64).reshape(-1, 2) * self.half) @ self.rotation.T
        return np.round(xy * _SCALE).astype(np.int32)

    def length(self, fraction):
        return max(1, int(round(fraction * self.half.mean())))


def _curve(start, control, end, count=12):
    """Points of a quadratic Bézier through ``start`` and ``end`` whose middle passes through ``control``."""
    start, control, end = (np.asarray(point, np.float64) for point in (start, control, end))
    handle = 2 * control - (start + end) / 2  # so that the curve's midpoint is ``control``
    steps = np.linspace(0, 1, count)[:, None]
    return (1 - steps) ** 2 * start + 2 * (1 - steps) * steps * handle + steps ** 2 * end


def _ellipse(frame, centre_uv, axes_uv, angle=0.0, count=32):
    turns = np.linspace(0, 2 * np.pi, count, endpoint=False)
    uv = np.stack([centre_uv[0] + axes_uv[0] * np.cos(turns), centre_uv[1] + axes_uv[1] * np.sin(turns)], 1)
    return frame.points(uv)


def draw_face(image, box, identity, units, angle=0.0):
    """Draw one face into ``image`` (BGR uint8, in place) inside ``box`` (x0, y0, x1, y1), turned by ``angle`` degrees."""
    frame = _Frame(box, angle)
    line = cv2.LINE_AA
    skin = tuple(float(value) for value in np.clip(identity.skin, 0, 255))
    dark = tuple(float(value) for value in np.clip(np.asarray(identity.skin) * 0.45, 0, 255))
    hair = tuple(float(value) for value in identity.hair)
    width, height = identity.width, identity.height
    if identity.hair_style == 2:  # long hair behind the face
        cv2.fillPoly(image, [_ellipse(frame, (0, -0.05), (width * 1.12, height * 1.05))], hair, line, _SHIFT)
    cv2.fillPoly(image, [_ellipse(frame, (0, 0), (width, height))], skin, line, _SHIFT)
    cv2.polylines(image, [_ellipse(frame, (0, 0), (width, height))], True, dark, 1, line, _SHIFT)
    if identity.hair_style in (1, 2):  # a cap of hair over the forehead
        turns = np.linspace(np.pi * 1.05, np.pi * 1.95, 16)
        top = np.stack([width * 1.02 * np.cos(turns), height * 1.02 * np.sin(turns)], 1)
        fringe = _curve((top[-1][0], -0.62 * height), (0, -0.55 * height), (top[0][0], -0.62 * height))
        cv2.fillPoly(image, [frame.points(np.concatenate([top, fringe]))], hair, line, _SHIFT)

    eye_v, spacing = identity.eye_height, identity.eye_spacing
    openness = max(0.12, 1.0 + 0.9 * units["AU5"] - 0.5 * units["AU6"] - 0.55 * units["AU7"])
    eye_w, eye_h = identity.eye_size, identity.eye_size * 0.5 * openness
    brow_base = eye_v - 0.2 - 0.02 * openness
    thickness = frame.length(identity.brow_thickness)
    for side in (-1, 1):
        centre = (side * spacing, eye_v)
        cv2.fillPoly(image, [_ellipse(frame, centre, (eye_w, eye_h))], (245, 245, 245), line, _SHIFT)
        iris = min(eye_h, eye_w * 0.5) * 0.95
        cv2.fillPoly(image, [_ellipse(frame, centre, (iris, iris))], (40, 30, 25), line, _SHIFT)
        lid = _curve((side * spacing - eye_w, eye_v), (side * spacing, eye_v - eye_h * 1.05), (side * spacing + eye_w, eye_v))
        cv2.polylines(image, [frame.points(lid)], False, (20, 20, 20), max(1, thickness // 2), line, _SHIFT)
        if units["AU6"] > 0.05:  # cheek raiser: the cheek pushes up a fold under the eye
            fold = _curve((side * (spacing - eye_w), eye_v + eye_h + 0.05), (side * spacing, eye_v + eye_h + 0.1),
                          (side * (spacing + eye_w * 1.2), eye_v + eye_h + 0.02))
            cv2.polylines(image, [frame.points(fold)], False, dark, 1, line, _SHIFT)
        inner = np.array([side * (spacing - eye_w * 0.9 - 0.06 * units["AU4"]),
                          brow_base - 0.16 * units["AU1"] + 0.12 * units["AU4"]])
        outer = np.array([side * (spacing + eye_w * 1.3), brow_base - 0.14 * units["AU2"] + 0.03 * units["AU4"]])
        middle = (inner + outer) / 2 + np.array([0, -0.05 - 0.06 * units["AU2"] + 0.04 * units["AU4"]])
        cv2.polylines(image, [frame.points(_curve(inner, middle, outer))], False, hair if identity.hair_style else (40, 40, 45),
                      thickness, line, _SHIFT)

    nose_top, nose_bottom = eye_v + 0.08, eye_v + 0.1 + identity.nose_length - 0.04 * units["AU10"] - 0.03 * units["AU9"]
    cv2.polylines(image, [frame.points([(0.02, nose_top), (0.06, nose_bottom)])], False, dark, 1, line, _SHIFT)
    wing = 0.1 + 0.05 * units["AU9"]
    cv2.polylines(image, [frame.points(_curve((-wing, nose_bottom - 0.02), (0, nose_bottom + 0.04), (wing, nose_bottom - 0.02)))],
                  False, dark, max(1, thickness // 2), line, _SHIFT)
    if units["AU9"] > 0.05:  # nose wrinkler: folds across the bridge
        for offset in (0.0, 0.06):
            fold = _curve((-0.08, nose_top + offset), (0, nose_top + offset - 0.03 * units["AU9"]), (0.08, nose_top + offset))
            cv2.polylines(image, [frame.points(fold)], False, dark, 1, line, _SHIFT)

    mouth_v = identity.mouth_height
    half = identity.mouth_width * (1 + 0.3 * units["AU20"] + 0.15 * units["AU12"] - 0.25 * units["AU23"])
    corner_v = mouth_v - 0.16 * units["AU12"] + 0.14 * units["AU15"] + 0.02 * units["AU20"]
    upper_v = mouth_v - 0.1 * units["AU10"] - 0.02 * units["AU26"]
    lower_v = mouth_v + 0.36 * units["AU26"] + 0.05 * units["AU12"] - 0.02 * units["AU23"] + 0.03 * units["AU20"]
    left, right = (-half, corner_v), (half, corner_v)
    upper = _curve(left, (0, upper_v), right)
    lower = _curve(right, (0, lower_v), left)
    lips = tuple(float(value) for value in np.clip(np.asarray(identity.skin) * np.array([0.55, 0.55, 0.85]), 0, 255))
    if lower_v - upper_v > 0.05:  # an open mouth: the inside, teeth with a smile
        cv2.fillPoly(image, [frame.points(np.concatenate([upper, lower]))], (30, 25, 60), line, _SHIFT)
        if units["AU12"] > 0.3:
            teeth = _curve(left, (0, upper_v + 0.04), right)
            cv2.polylines(image, [frame.points(teeth)], False, (235, 235, 235), frame.length(0.05), line, _SHIFT)
    lip_width = max(1, int(round(thickness * (1.0 - 0.6 * units["AU23"]))))
    cv2.polylines(image, [frame.points(np.concatenate([upper, lower]))], True, lips, lip_width, line, _SHIFT)
    if units["AU10"] + units["AU9"] > 0.3:  # nasolabial folds of a raised upper lip
        for side in (-1, 1):
            cv2.polylines(image, [frame.points([(side * wing * 1.3, nose_bottom - 0.02), (side * (half + 0.05), corner_v - 0.02)])],
                          False, dark, 1, line, _SHIFT)
    return image


def _photo_crop(rng, photos, width, height):
    photo = photos[rng.integers(len(photos))]
    scale = max(width / photo.shape[1], height / photo.shape[0]) * rng.uniform(1.0, 2.0)
    resized = cv2.resize(photo, (max(width, int(photo.shape[1] * scale) + 1), max(height, int(photo.shape[0] * scale) + 1)),
                         interpolation=cv2.INTER_AREA)
    top = rng.integers(0, resized.shape[0] - height + 1)
    left = rng.integers(0, resized.shape[1] - width + 1)
    return resized[top:top + height, left:left + width].copy()


def relight(image, gain, gradient, direction):
    """Lighting: multiply by ``gain`` and a linear ramp of ``gradient`` across the image along ``direction`` (radians)."""
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = ((x / width - 0.5) * np.cos(direction) + (y / height - 0.5) * np.sin(direction)) * 2
    factor = gain * (1 + gradient * ramp)
    return np.clip(image.astype(np.float32) * factor[..., None], 0, 255).astype(np.uint8)


def crowd_votes(rng, emotion, blend, blend_weight, intensity, annotators=10, noise=0.08):
    """Ten (``annotators``) simulated crowd votes over EMOTIONS for a face of ``emotion`` blended with ``blend``.

    The voting distribution puts ``1 - blend_weight`` on the emotion and ``blend_weight``
    on its blend, moves ``(1 - intensity) / 2`` of it to neutral (a faint expression
    reads as neutral), and spreads ``noise`` evenly over all seven classes.
    """
    distribution = np.zeros(len(EMOTIONS))
    distribution[EMOTIONS.index(emotion)] += 1 - blend_weight
    if blend is not None:
        distribution[EMOTIONS.index(blend)] += blend_weight
    faint = (1 - intensity) / 2
    distribution = distribution * (1 - faint)
    distribution[EMOTIONS.index("neutral")] += faint
    distribution = distribution * (1 - noise) + noise / len(EMOTIONS)
    return rng.multinomial(annotators, distribution / distribution.sum())


def web_image(rng, emotion, photos, size=48, ambiguous_fraction=0.35):
    """(BGR image, identity, blend, blend weight, intensity): one apex face filling a ``size``² web image."""
    identity = random_identity(rng)
    intensity = rng.uniform(0.75, 1.0) if emotion != "neutral" else 1.0
    blend, blend_weight = None, 0.0
    if rng.random() < ambiguous_fraction:
        blend, blend_weight = CONFUSED_WITH[emotion], rng.uniform(0.2, 0.5)
    image = _photo_crop(rng, photos, size, size)
    margin = size * rng.uniform(0.02, 0.1)
    centre = size / 2 + rng.normal(0, size * 0.03, 2)
    half = size / 2 - margin
    box = (centre[0] - half * 0.92, centre[1] - half, centre[0] + half * 0.92, centre[1] + half * 1.02)
    draw_face(image, box, identity, expression_units(emotion, intensity, blend, blend_weight), angle=rng.normal(0, 6))
    image = relight(image, rng.uniform(0.8, 1.15), rng.uniform(0, 0.25), rng.uniform(0, 2 * np.pi))
    return image, identity, blend, blend_weight, intensity


def intensity_profile(frames, peak, rng):
    """Expression intensity per frame: onset (rise from near 0), apex (hold ``peak``), offset (fall part of the way back)."""
    onset_end = int(round(frames * rng.uniform(0.25, 0.4)))
    apex_end = onset_end + int(round(frames * rng.uniform(0.25, 0.35)))
    settle = peak * rng.uniform(0.3, 0.6)
    profile = []
    for index in range(frames):
        if index < onset_end:
            profile.append(0.05 + (peak - 0.05) * (index / max(1, onset_end)) ** 1.5)
        elif index < apex_end:
            profile.append(peak)
        else:
            profile.append(peak + (settle - peak) * (index - apex_end + 1) / max(1, frames - apex_end))
    return np.asarray(profile)


def video_clip(rng, emotion, photos, frames=16, frame_size=(120, 96)):
    """(frames (T, H, W, 3) BGR uint8, face boxes (T, 4)): one clip of ``emotion`` with head motion and changing light."""
    width, height = frame_size
    identity = random_identity(rng)
    background = _photo_crop(rng, photos, width + 16, height + 16)
    peak = rng.uniform(0.5, 0.9)
    profile = intensity_profile(frames, peak, rng) if emotion != "neutral" else np.zeros(frames)
    face_height = height * rng.uniform(0.55, 0.72)
    start = np.array([width / 2, height / 2]) + rng.normal(0, [width * 0.08, height * 0.05])
    drift = rng.normal(0, [width * 0.08, height * 0.04])
    turn = (rng.normal(0, 5), rng.normal(0, 8))
    zoom = rng.uniform(-0.12, 0.12)
    light = (rng.uniform(0.65, 1.25), rng.uniform(0.65, 1.25), rng.uniform(0, 0.4), rng.uniform(0, 0.4), rng.uniform(0, 2 * np.pi))
    pan = rng.integers(0, 17, 2)
    clip, boxes = [], []
    for index in range(frames):
        phase = index / max(1, frames - 1)
        shift = np.minimum(pan * (1 - phase) + rng.integers(0, 2, 2), 16).astype(int)  # a slow pan and a little camera shake
        image = background[shift[1]:shift[1] + height, shift[0]:shift[0] + width].copy()
        centre = start + drift * phase
        half_h = face_height * (1 + zoom * phase) / 2
        half_w = half_h * 0.8
        box = np.array([centre[0] - half_w, centre[1] - half_h, centre[0] + half_w, centre[1] + half_h])
        units = expression_units(emotion, profile[index])
        draw_face(image, box, identity, units, angle=turn[0] + (turn[1] - turn[0]) * phase)
        gain = light[0] + (light[1] - light[0]) * phase
        image = relight(image, gain, light[2] + (light[3] - light[2]) * phase, light[4] + phase)
        clip.append(image)
        boxes.append(np.clip(box, [0, 0, 0, 0], [width, height, width, height]))
    return np.stack(clip), np.asarray(boxes, np.float32)


def resolve_settings(**settings):
    resolved = known_settings(settings, DEFAULTS, "stand-in")
    resolved["web_per_class"] = tuple(int(count) for count in resolved["web_per_class"])
    resolved["clips_per_class"] = tuple(int(count) for count in resolved["clips_per_class"])
    resolved["frame_size"] = tuple(int(side) for side in resolved["frame_size"])
    return resolved


def _write_web(out_dir, rng, photos, settings):
    fer_rows, plus_rows = [], []
    for split, count in zip(FER_USAGES, settings["web_per_class"]):
        for _ in range(count):
            for emotion in EMOTIONS:
                image, _, blend, weight, intensity = web_image(rng, emotion, photos, settings["web_size"], settings["ambiguous_fraction"])
                grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                votes = crowd_votes(rng, emotion, blend, weight, intensity, settings["annotators"])
                name = f"fer{len(fer_rows):07d}.png"
                fer_rows.append([FER2013_ORDER.index(emotion), " ".join(str(value) for value in grey.ravel()), FER_USAGES[split]])
                by_name = dict(zip(EMOTIONS, votes))
                counts = [by_name["neutral"], by_name["happy"], by_name["surprise"], by_name["sad"], by_name["angry"],
                          by_name["disgust"], by_name["fear"], 0, 0, 0]  # FER+'s column order; no contempt, unknown or NF
                plus_rows.append([FER_USAGES[split], name, *counts])
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "fer2013.csv"), "w", newline="") as handle:
        csv.writer(handle).writerows([["emotion", "pixels", "Usage"], *fer_rows])
    with open(os.path.join(out_dir, "fer2013new.csv"), "w", newline="") as handle:
        csv.writer(handle).writerows([["Usage", "Image name", *FERPLUS_COLUMNS], *plus_rows])


def write_clip(path, frames, boxes, fps=25):
    """``frames`` (T, H, W, 3) BGR as an MJPG ``.avi`` (or, for a path without extension, a folder of PNG frames) and its boxes."""
    if path.endswith(".avi"):
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames.shape[2], frames.shape[1]))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write MJPG video to {path!r}.")
        for frame in frames:
            writer.write(frame)
        writer.release()
        sidecar = path[:-4] + ".json"
    else:
        os.makedirs(path, exist_ok=True)
        for index, frame in enumerate(frames):
            cv2.imwrite(os.path.join(path, f"{index:03d}.png"), frame)
        sidecar = path + ".json"
    with open(sidecar, "w") as handle:
        json.dump({"boxes": np.round(boxes, 2).tolist()}, handle)


def _write_video(out_dir, rng, photos, settings):
    for split, count in zip(AFEW_SPLITS, settings["clips_per_class"]):
        for emotion in EMOTIONS:
            folder = os.path.join(out_dir, AFEW_SPLITS[split], emotion.capitalize())
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                frames, boxes = video_clip(rng, emotion, photos, settings["frames"], settings["frame_size"])
                write_clip(os.path.join(folder, f"{split}{index:04d}.avi"), frames, boxes)


def generate_emotion_set(out_dir, **settings):
    """Write the stand-in to ``out_dir`` (whole, replacing what is there): ``web/`` (FER2013 + FER+ CSVs) and ``video/``
    (AFEW folders).  Returns the settings."""
    settings = resolve_settings(**settings)
    photos = load_photos()
    web_rng, video_rng = (np.random.default_rng([settings["seed"], part]) for part in (1, 2))
    with atomic_folder(out_dir) as temporary:
        _write_web(os.path.join(temporary, WEB_DIR), web_rng, photos, settings)
        _write_video(os.path.join(temporary, VIDEO_DIR), video_rng, photos, settings)
        with open(os.path.join(temporary, SETTINGS_FILE), "w") as handle:
            json.dump({**settings, "renderer_version": RENDERER_VERSION}, handle, indent=2)
    return settings


def ensure_emotion_set(out_dir, **settings):
    """Generate the stand-in at ``out_dir`` unless it is there with these settings; returns (web dir, video dir)."""
    resolved = resolve_settings(**settings)
    try:
        with open(os.path.join(out_dir, SETTINGS_FILE)) as handle:
            stored = json.load(handle)
    except (OSError, ValueError):
        stored = None
    wanted = json.loads(json.dumps({**resolved, "renderer_version": RENDERER_VERSION}))
    if stored != wanted:
        generate_emotion_set(out_dir, **resolved)
    return os.path.join(out_dir, WEB_DIR), os.path.join(out_dir, VIDEO_DIR)


def main(argv=None):
    splits = ("TRAIN", "VAL", "TEST")
    args = vars(settings_parser("faces", __doc__, DEFAULTS, metavars={"web_per_class": splits, "clips_per_class": splits,
                                                                      "frame_size": ("WIDTH", "HEIGHT")}).parse_args(argv))
    out_dir = args.pop("out_dir")
    print(f"wrote the emotion stand-in to {out_dir}: {generate_emotion_set(out_dir, **args)}", file=sys.stderr)


if __name__ == "__main__":
    main()
