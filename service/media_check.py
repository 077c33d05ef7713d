"""check_media: an uploaded file checked in a child process with memory, CPU and time limits.

The child runs ``python -m core.video.inspect`` (Pillow and FFmpeg on hostile bytes): a crash, a memory
bomb or a hang there costs that process only, and the gateway itself never imports av.
"""

import json
import logging
import subprocess
import sys
from pathlib import Path

from core.contract.uploads import MediaInfo
from core.errors import (
    InputTooLargeError,
    InvalidUploadError,
    MediaError,
    MimicMotionError,
    NotAnImageError,
    NotAVideoError,
    UnsupportedMediaTypeError,
)
from core.settings import Settings

logger = logging.getLogger(__name__)

CHECK_MEMORY_BYTES = 3 * 1024**3  # address space: a 40-MP RGB image decodes in 120 MB, FFmpeg maps its libraries
CHECK_CPU_S = 60
CHECK_TIMEOUT_S = 90
_ERROR_CLASSES = (
    InputTooLargeError, NotAnImageError, NotAVideoError, MediaError, UnsupportedMediaTypeError, InvalidUploadError
)
_ERRORS: dict[str, type[MimicMotionError]] = {cls.code: cls for cls in _ERROR_CLASSES}


def check_media(path: Path, settings: Settings) -> MediaInfo:
    """What ``path`` holds, checked with the limits that fetched inputs get.

    Raises:
        UnsupportedMediaTypeError, InvalidUploadError, or a MediaError subclass: the file cannot be a job's input.
    """
    command = [
        sys.executable, "-m", "core.video.inspect", str(path),
        "--max-image-pixels", str(settings.max_image_pixels),
        "--max-video-pixels", str(settings.max_video_pixels),
        "--max-video-duration-s", str(settings.max_video_duration_s),
        "--max-memory-bytes", str(CHECK_MEMORY_BYTES), "--max-cpu-s", str(CHECK_CPU_S),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise InvalidUploadError(f"the file could not be checked within {CHECK_TIMEOUT_S} s") from None
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        # Killed by its limits (or crashed in a decoder): the file is what made it so.
        logger.warning("media check exited %s: %s", result.returncode, result.stderr[-500:])
        raise InvalidUploadError("the file could not be decoded within this server's memory and time limits")
    answer = json.loads(lines[-1])
    if "error" in answer:
        error_class = _ERRORS.get(answer["error"]["code"], InvalidUploadError)
        raise error_class(answer["error"]["message"])
    return MediaInfo.model_validate(answer)
