"""Write generated frames: H.264 MP4 with PyAV, or a directory of lossless PNG frames.

No torch here; frames arrive as (N, H, W, 3) uint8 RGB numpy arrays.
"""

import io
import logging
import os
import re
import uuid
from pathlib import Path

import av
import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

PNG_NAME = re.compile(r"^(\d{5})\.png$")


def write_frames(frames: np.ndarray, out: Path, fps: int) -> None:
    """Write ``frames`` to ``out``: an ``.mp4`` path gives H.264, any other path a PNG directory.

    This is the command line's output rule (DESIGN.md "Command line").
    """
    if Path(out).suffix.lower() == ".mp4":
        write_mp4(frames, out, fps)
    else:
        write_png_frames(frames, out)


def write_mp4(frames: np.ndarray, path: Path, fps: int, *, crf: int = 18, preset: str = "medium") -> None:
    """Encode (N, H, W, 3) uint8 RGB frames as H.264 (libx264, yuv420p) in an MP4 at ``fps``.

    yuv420p halves the chroma planes, so x264 needs even sizes: an odd height or width loses its
    last (bottom or right) pixel row or column rather than gaining a padded one. ``+faststart`` moves
    the index to the front so players can stream the file. The file is written beside ``path`` under
    a temporary name and renamed into place, so a reader never sees half a video.

    The original (torchvision ``write_video``) used x264's default crf 23; 18 is visually lossless.
    """
    _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    num_frames, height, width = frames.shape[:3]
    even_height, even_width = height - height % 2, width - width % 2
    if even_height == 0 or even_width == 0:
        raise ValueError(f"frames of {height}x{width} are too small for H.264 yuv420p (need at least 2x2)")
    if (even_height, even_width) != (height, width):
        logger.info("cropping %dx%d frames to %dx%d for yuv420p", height, width, even_height, even_width)
    temp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with av.open(str(temp_path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = even_width, even_height, "yuv420p"
            stream.options = {"crf": str(crf), "preset": preset}
            for frame in frames:
                video_frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(frame[:even_height, :even_width]), format="rgb24"
                )
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode(None))  # flush the encoder's delayed frames
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)
    logger.info("wrote %d frames (%dx%d, %d fps) to %s", num_frames, even_width, even_height, fps, path)


def write_png_frames(frames: np.ndarray, directory: Path) -> list[Path]:
    """Write (N, H, W, 3) uint8 RGB frames as ``directory/00000.png``, ``00001.png``, ... (lossless).

    Numbered PNGs left over from an earlier, longer run (index >= N) are removed, so the directory
    holds exactly this result. Other files are left alone.
    """
    _check_frames(frames)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        frame_path = directory / f"{index:05d}.png"
        Image.fromarray(np.ascontiguousarray(frame)).save(frame_path, format="PNG")
        paths.append(frame_path)
    for stale in directory.iterdir():
        match = PNG_NAME.match(stale.name)
        if match and int(match.group(1)) >= len(frames) and stale.is_file():
            stale.unlink()
    return paths


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[3] != 3:
        shape = getattr(frames, "shape", None)
        raise ValueError(f"frames must be an (N, H, W, 3) array, got shape {shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: there is nothing to write")


def encode_animated_webp(frames: np.ndarray, *, frame_ms: int = 250, quality: int = 70) -> bytes:
    """(F, H, W, 3) uint8 RGB as a looping animated WebP (one still frame when F is 1)."""
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="WEBP", save_all=len(images) > 1, append_images=images[1:], duration=frame_ms, loop=0,
        quality=quality, method=4,
    )  # fmt: skip
    return buffer.getvalue()
