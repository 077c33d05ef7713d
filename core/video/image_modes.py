"""Pillow image modes to (H, W, 3) uint8 RGB: each accepted mode converted faithfully, the rest refused.

Used by ``core.video.decode.read_image`` once the header is read. No torch here.
"""

import numpy as np
from PIL import Image

from core.errors import NotAnImageError

# Modes that Pillow's convert("RGB") maps faithfully: alpha dropped and palettes expanded, as pil_loader does.
_RGB_CONVERTIBLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
# Premultiplied alpha: un-premultiplied first, or the colours come out darkened (La has no direct path at all).
_PREMULTIPLIED_MODES = {"La": "LA", "RGBa": "RGBA"}
# 16-bit grey (a 16-bit PNG, TIFF or PGM): convert("RGB") clips it at 255, so a person turned all white and
# the job failed as no_person_detected (issue 19). "I" (32-bit) is taken when its values fit in 16 bits.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_MODE_NAMES = {"F": "32-bit floating point", "LAB": "CIE L*a*b*", "HSV": "HSV", "I": "32-bit integer"}


def check_image_mode(mode: str, name: str) -> None:
    """Refuse, from the header, a mode with no faithful 8-bit RGB (``NotAnImageError`` naming the mode)."""
    if mode in _RGB_CONVERTIBLE_MODES or mode in _PREMULTIPLIED_MODES or mode in _SIXTEEN_BIT_MODES:
        return
    raise NotAnImageError(_unsupported_mode_message(name, mode))


def _unsupported_mode_message(name: str, mode: str) -> str:
    # Float and Lab pixels have no agreed range or white point to map to 8-bit sRGB: refused, not guessed.
    kind = _MODE_NAMES.get(mode, "an unsupported pixel mode")
    return (
        f"{name} has pixel mode {mode!r} ({kind}), which cannot be converted to RGB faithfully; "
        "send an 8- or 16-bit grey, RGB, RGBA, palette or CMYK image"
    )


def image_to_rgb(image: Image.Image, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image whose mode passed ``check_image_mode``."""
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(image)  # (H, W) uint16 in native order (numpy reads I;16B big-endian), or int32
        if grey.size and (int(grey.min()) < 0 or int(grey.max()) > 0xFFFF):
            raise NotAnImageError(_unsupported_mode_message(name, image.mode) + " (values outside 0 to 65535)")
        # round(v * 255 / 65535): 16-bit white is 8-bit white, and mid grey stays mid grey.
        grey8 = ((grey.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if image.mode in _PREMULTIPLIED_MODES:
        image = image.convert(_PREMULTIPLIED_MODES[image.mode])
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
