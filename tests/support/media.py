"""Synthetic test media: figure-like images and videos, and bad inputs named for what they do.

Everything is generated from a seed, small, and written with PyAV or by hand; no downloads.
"""

import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

# Codec -> (container format, pixel format) for write_video. MJPEG wants full-range yuvj420p.
CODEC_FORMATS = {
    "libx264": ("mp4", "yuv420p"),
    "mpeg4": ("avi", "yuv420p"),
    "libvpx-vp9": ("webm", "yuv420p"),
    "mjpeg": ("matroska", "yuvj420p"),
}
CONTAINER_BY_SUFFIX = {".mp4": "mp4", ".avi": "avi", ".webm": "webm", ".mkv": "matroska", ".mov": "mov"}


def flat_image(height: int, width: int, value: int = 0) -> np.ndarray:
    """(height, width, 3) uint8 of one value: the "no person" image."""
    return np.full((height, width, 3), value, dtype=np.uint8)


def person_image(height: int = 256, width: int = 192, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a textured background and a drawn standing figure.

    Not a photo, but not flat either: gradient plus noise behind a head, torso, arms and legs.
    """
    return _draw_figure(height, width, seed, center_x=0.5, arm_swing=0.0)


def moving_person_frames(num_frames: int, height: int = 144, width: int = 176, seed: int = 0) -> np.ndarray:
    """(num_frames, height, width, 3) uint8 RGB: over a fixed background the figure walks left to right
    and swings its arms."""
    frames = []
    for index in range(num_frames):
        phase = index / max(1, num_frames - 1)
        center_x = 0.3 + 0.4 * phase
        arm_swing = float(np.sin(2 * np.pi * index / 8))
        frames.append(_draw_figure(height, width, seed, center_x=center_x, arm_swing=arm_swing))
    return np.stack(frames)


def _draw_figure(height: int, width: int, seed: int, *, center_x: float, arm_swing: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # 1. Background: a vertical gradient with mild grey noise, so nothing is flat. The noise is the
    # same in all channels: yuv420p halves chroma, so colour noise would not survive a video round trip.
    gradient = np.linspace(60, 180, height, dtype=np.float32)[:, None, None]
    tint = np.array([1.0, 0.9, 0.8], dtype=np.float32)
    background = gradient * tint + rng.normal(0.0, 6.0, (height, width, 1))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    # 2. The figure, in units of the body height (about 80 % of the image height).
    body = 0.8 * height
    cx, top = center_x * width, 0.1 * height

    def point(dx: float, dy: float) -> tuple[float, float]:
        return cx + dx * body, top + dy * body

    limb = max(2, int(body * 0.05))
    skin, shirt, trousers = (224, 172, 140), (200, 40, 40), (40, 50, 140)
    neck, hip = point(0, 0.18), point(0, 0.55)
    draw.line([neck, hip], fill=shirt, width=limb * 3)  # torso
    for side in (-1, 1):
        shoulder = point(side * 0.1, 0.2)
        elbow = point(side * 0.16, 0.37 + 0.03 * arm_swing * side)
        wrist = point(side * (0.18 + 0.06 * arm_swing * side), 0.52)
        draw.line([neck, shoulder, elbow, wrist], fill=shirt, width=limb)
        draw.ellipse([wrist[0] - limb, wrist[1] - limb, wrist[0] + limb, wrist[1] + limb], fill=skin)
        knee = point(side * (0.07 + 0.03 * arm_swing * side), 0.75)
        ankle = point(side * 0.08, 0.97)
        draw.line([point(side * 0.05, 0.55), knee, ankle], fill=trousers, width=limb + 1)
    head_x, head_y = point(0, 0.09)
    radius = 0.08 * body
    draw.ellipse([head_x - radius * 0.8, head_y - radius, head_x + radius * 0.8, head_y + radius], fill=skin)
    return np.asarray(image, dtype=np.uint8).copy()


def write_video(
    path: Path, frames: np.ndarray, fps: float = 30, codec: str = "libx264", container: str | None = None
) -> Path:
    """Encode (N, H, W, 3) uint8 RGB frames (even H and W) with PyAV; the container follows the suffix."""
    path = Path(path)
    default_format, pix_fmt = CODEC_FORMATS.get(codec, ("mp4", "yuv420p"))
    container_format = container or CONTAINER_BY_SUFFIX.get(path.suffix.lower(), default_format)
    with av.open(str(path), mode="w", format=container_format) as output:
        stream = output.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "12"}
        output.start_encoding()  # so that a zero-frame video still gets its header
        for frame in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        output.mux(stream.encode(None))
    return path


def write_zero_frame_video(path: Path) -> Path:
    """An AVI with a valid 64x48 MPEG-4 video stream that holds no frames."""
    return write_video(path, np.zeros((0, 48, 64, 3), dtype=np.uint8), codec="mpeg4", container="avi")


def write_truncated_video(path: Path, num_frames: int = 30, keep_fraction: float = 0.5, faststart: bool = True) -> Path:
    """An MP4 cut off after ``keep_fraction`` of its bytes, as an interrupted upload leaves it.

    With ``faststart`` the index sits in front, so the first frames still decode; without it the
    index was at the end and is gone, so nothing decodes.
    """
    path = Path(path)
    frames = moving_person_frames(num_frames, height=48, width=64)
    full = path.with_name(path.name + ".full.mp4")
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(full), mode="w", format="mp4", options=options) as output:
        stream = output.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for frame in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode(None))
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def write_corrupt_video(path: Path, num_frames: int = 20, seed: int = 0) -> Path:
    """An MJPEG MKV with 64 bytes flipped in its second half: FFmpeg fails part-way through decoding."""
    path = write_video(Path(path), moving_person_frames(num_frames, height=48, width=64), codec="mjpeg")
    data = bytearray(path.read_bytes())
    for index in np.random.default_rng(seed).integers(len(data) // 2, len(data) - 64, 64):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def write_audio_only(path: Path, duration_s: float = 0.5) -> Path:
    """A silent mono audio file: AAC for ``.m4a``/``.mp4``, 16-bit PCM for ``.wav``."""
    path = Path(path)
    sample_rate = 16000
    is_wav = path.suffix.lower() == ".wav"
    codec, sample_format = ("pcm_s16le", "s16") if is_wav else ("aac", "fltp")
    dtype = np.int16 if is_wav else np.float32
    with av.open(str(path), mode="w", format="wav" if is_wav else "mp4") as output:
        stream = output.add_stream(codec, rate=sample_rate, layout="mono")
        chunk, num_samples = 1024, int(duration_s * sample_rate)
        for start in range(0, num_samples, chunk):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, chunk), dtype=dtype), format=sample_format, layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def garbage_bytes(num_bytes: int = 4096, seed: int = 0) -> bytes:
    """Random bytes: no format's magic number, nothing decodable."""
    return np.random.default_rng(seed).integers(0, 256, num_bytes, dtype=np.uint8).tobytes()


def write_garbage(path: Path, num_bytes: int = 4096, seed: int = 0) -> Path:
    """``garbage_bytes`` under whatever name the test picks (``garbage.mp4``, ``garbage.png``)."""
    path = Path(path)
    path.write_bytes(garbage_bytes(num_bytes, seed))
    return path


def write_empty(path: Path) -> Path:
    """A 0-byte file."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, extra_chunks: bytes = b"") -> bytes:
    # bit depth 1, colour type 0 (grey), compression 0, filter 0, no interlace; a few rows of pixels
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = (b"\x00" + b"\x00" * ((width + 7) // 8)) * min(height, 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + extra_chunks
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def png_bomb_bytes(width: int = 30000, height: int = 30000) -> bytes:
    """A valid-looking PNG whose header claims ``width`` x ``height`` 1-bit pixels, in about 100 bytes.

    Written by hand: IHDR, an IDAT holding only a few rows, IEND. Decoding it fully would need
    width*height bytes of memory; a safe reader refuses it from the header.
    """
    return _png(width, height)


def png_text_bomb_bytes(text_bytes: int = 16 * 1024 * 1024) -> bytes:
    """A 16x16 PNG with a zTXt chunk that inflates to ``text_bytes`` bytes from a few kilobytes."""
    ztxt = b"Comment\x00\x00" + zlib.compress(b"A" * text_bytes, 9)
    return _png(16, 16, _png_chunk(b"zTXt", ztxt))


def write_png_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """``png_bomb_bytes`` written to ``path``."""
    path = Path(path)
    path.write_bytes(png_bomb_bytes(width, height))
    return path


def write_huge_video(path: Path, width: int = 4160, height: int = 4160) -> Path:
    """A one-frame MJPEG MKV of ``width`` x ``height`` (default just over 4096*4096 pixels); ~0.3 s."""
    return write_video(path, np.zeros((1, height, width, 3), dtype=np.uint8), codec="mjpeg", container="matroska")


def truncated_png_bytes(keep_fraction: float = 0.5) -> bytes:
    """A PNG of ``person_image`` cut off after ``keep_fraction`` of its bytes."""
    buffer = io.BytesIO()
    Image.fromarray(person_image(64, 48)).save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[: int(len(data) * keep_fraction)]


def write_image(path: Path, image: np.ndarray, format: str | None = None) -> Path:
    """Save an (H, W, 3) uint8 array with Pillow; the format follows the suffix unless given."""
    path = Path(path)
    Image.fromarray(image).save(path, format=format)
    return path


def png16_bytes(image: np.ndarray) -> bytes:
    """A 16-bit PNG of an (H, W) grey or (H, W, 3) RGB uint16 array, written by hand (Pillow cannot write RGB48).

    Colour type 0 (grey) or 2 (RGB), bit depth 16, big-endian samples, filter 0 on every row.
    """
    height, width = image.shape[:2]
    colour_type = 2 if image.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    samples = image.astype(">u2").reshape(height, -1)
    rows = b"".join(b"\x00" + row.tobytes() for row in samples)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def to_sixteen_bit(image: np.ndarray) -> np.ndarray:
    """uint8 -> uint16 with the same brightness (v * 257: 255 becomes 65535)."""
    return image.astype(np.uint16) * 257


def image_bytes_in_mode(image: np.ndarray, mode: str, format: str) -> bytes:
    """An (H, W, 3) uint8 RGB image converted by Pillow to ``mode`` and saved as ``format``."""
    buffer = io.BytesIO()
    Image.fromarray(image).convert(mode).save(buffer, format=format)
    return buffer.getvalue()


def write_flat_video(
    path: Path, num_frames: int, height: int, width: int, fps: float = 24, container: str | None = None
) -> Path:
    """A decoded-size bomb: ``num_frames`` flat grey frames, a few kilobytes of H.264 for any size."""
    frames = np.broadcast_to(np.uint8(128), (num_frames, height, width, 3))  # one frame's memory, not N
    return write_video(path, frames, fps=fps, container=container)
