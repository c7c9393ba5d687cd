"""Uploaded bytes → checked RGB array, and the arrays the models and the page need.

Checks run in the order that keeps a hostile file cheap: the size of the bytes (enforced while the request is read,
see ``app._UploadLimit``), then the format and dimensions from the header alone (Pillow reads no pixel data in
``Image.open``), and only then the full decode, which fails cleanly on a truncated file.  Every failure is an
:class:`ImageError` carrying an HTTP status and one line naming the problem and the fix.
"""

import io
import warnings

import cv2
import numpy as np
from PIL import Image

from mindgap.data.pipeline import model_input  # noqa: F401  (the viewer's input, as training's)

ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP, e.g. 8000×5000
DEFAULT_MIN_SIDE = 16
DEFAULT_DISPLAY_SIDE = 1024
_SIGNATURES = ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"))


class ImageError(ValueError):
    """A rejected upload: ``status`` is the HTTP status, ``str(error)`` the one-line message."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def decode_image(data, *, max_pixels=DEFAULT_MAX_PIXELS, min_side=DEFAULT_MIN_SIDE):
    """Bytes of an image file → RGB uint8 array (h, w, 3), or :class:`ImageError`.

    Grayscale, palette, RGBA and CMYK images are converted to RGB (alpha is
    dropped); an animated GIF gives its first frame.
    """
    if not data:
        raise ImageError("The upload is empty (0 bytes); choose an image file.", 400)
    try:
        with warnings.catch_warnings():  # our own pixel limit below replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # parses the header only
    except Image.DecompressionBombError:
        raise ImageError(f"The image has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb?); send one of at most {max_pixels:,} pixels.", 422) from None
    except Exception:  # Pillow raises UnidentifiedImageError, SyntaxError, struct.error ... for junk
        kind = next((name for signature, name in _SIGNATURES if data.startswith(signature)), None)
        if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            kind = "WEBP"
        if kind is not None:
            raise ImageError(f"The upload starts like a {kind} file but its header is broken ({len(data):,} bytes); the file is probably truncated or corrupt.", 400) from None
        raise ImageError(f"The upload is not an image ({len(data):,} bytes of an unknown format); send a {', '.join(ACCEPTED_FORMATS)} file.", 415) from None
    with image:
        width, height = image.size
        if image.format not in ACCEPTED_FORMATS:
            raise ImageError(f"Image format {image.format} is not accepted; send a {', '.join(ACCEPTED_FORMATS)} file.", 415)
        if width * height > max_pixels:
            raise ImageError(f"The image is {width}×{height} = {width * height:,} pixels, over the {max_pixels:,}-pixel limit; scale it down.", 422)
        if min(width, height) < min_side:
            raise ImageError(f"The image is {width}×{height} pixels; both sides must be at least {min_side} pixels.", 422)
        try:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except Exception as error:  # OSError("image file is truncated ...") and decoder errors
            raise ImageError(f"The {image.format} image could not be decoded ({str(error).splitlines()[0] if str(error) else type(error).__name__}); the file is probably truncated or corrupt.", 400) from None
    return rgb


def display_image(rgb, max_side=DEFAULT_DISPLAY_SIDE):
    """The image at its own aspect ratio, scaled down (area interpolation) so its longer side is at most ``max_side``."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def encode_png(rgb, compression=1):
    """RGB uint8 array → PNG bytes (fast compression: these go over loopback)."""
    ok, buffer = cv2.imencode(".png", np.asarray(rgb, np.uint8)[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG.")
    return buffer.tobytes()
