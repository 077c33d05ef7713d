"""Checking an uploaded file: sniff its type from its first bytes, then open it with the same decoders and
limits as a job's fetched inputs (``core.video.decode``), decoding one frame of a video.

The gateway runs this in a child process with memory and CPU limits (``python -m core.video.inspect``),
so a hostile file can crash or bloat only that process. It prints one JSON line: the MediaInfo, or
``{"error": {"code", "message"}}``.
"""

import argparse
import dataclasses
import json
import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from core.errors import InputTooLargeError, InvalidUploadError, MediaError, NotAVideoError, UnsupportedMediaTypeError
from core.video.decode import VIDEO_OPEN_OPTIONS, probe_video, read_image

# Leading bytes of the types people send, media or not (for a clear "this is a PDF" answer).
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (0, b"FLV", "video/x-flv"),
    (0, b"OggS", "video/ogg"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "video/x-ms-asf"),
    (0, b"\x00\x00\x01\xba", "video/mpeg"),
    (0, b"%PDF", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
)
_RIFF = {b"WEBP": "image/webp", b"AVI ": "video/x-msvideo", b"WAVE": "audio/wav"}
_FTYP_IMAGE = {b"avif", b"avis", b"heic", b"heix", b"mif1"}


@dataclass(frozen=True)
class InspectedMedia:
    """What the check found (the gateway reads it as ``core.contract.uploads.MediaInfo``)."""

    kind: str  # "image" or "video"
    content_type: str
    width: int
    height: int
    duration_s: float | None = None
    fps: float | None = None


def sniff_content_type(head: bytes) -> str:
    """The type that a file's first bytes (64 or more) show; ``application/octet-stream`` if none."""
    for offset, magic, content_type in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _FTYP_IMAGE:
            return "image/avif" if brand.startswith(b"avi") else "image/heic"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return "video/mp2t"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    if text.startswith((b"{", b"[")):
        return "application/json"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def inspect_media(
    path: Path, *, max_image_pixels: int, max_video_pixels: int, max_video_duration_s: float
) -> InspectedMedia:
    """Check that ``path`` is an image or a video a job can use.

    Raises:
        InvalidUploadError: the file is empty.
        UnsupportedMediaTypeError: neither an image nor a video (the message names the sniffed type).
        MediaError: an image or video that is truncated, corrupt or over a limit (its code says which).
    """
    size = path.stat().st_size
    if size == 0:
        raise InvalidUploadError("the file is empty (0 bytes)")
    with path.open("rb") as file:
        sniffed = sniff_content_type(file.read(512))
    kind = sniffed.split("/")[0]
    if kind == "image":
        image = read_image(path, max_pixels=max_image_pixels)
        return InspectedMedia(kind="image", content_type=sniffed, width=image.shape[1], height=image.shape[0])
    try:
        info = probe_video(path)
    except NotAVideoError:
        if kind == "video":
            raise  # a video we recognised that does not open: truncated or corrupt
        raise UnsupportedMediaTypeError(
            f"the file looks like {sniffed}, not an image or a video (images: PNG, JPEG, WebP, ...; videos: MP4, "
            "WebM, MOV, ...)"
        ) from None
    if info.width * info.height > max_video_pixels:
        raise InputTooLargeError(
            f"video frames are {info.width}x{info.height}, more than the limit of {max_video_pixels} pixels"
        )
    if info.duration_s > max_video_duration_s:
        raise InputTooLargeError(
            f"the video lasts {info.duration_s:.2f} s, longer than the limit of {max_video_duration_s:g} s"
        )
    _decode_first_frame(path)
    return InspectedMedia(
        kind="video", content_type=sniffed if kind == "video" else "video/unknown",
        width=info.width, height=info.height, duration_s=info.duration_s, fps=info.fps,
    )  # fmt: skip


def _decode_first_frame(path: Path) -> None:
    try:
        with av.open(str(path), mode="r", options=VIDEO_OPEN_OPTIONS) as container:
            for _ in container.decode(video=0):
                return
    except (av.error.FFmpegError, ValueError) as exc:
        raise NotAVideoError(f"the video does not decode ({exc})") from exc
    raise NotAVideoError("the video has a video stream but no frame decodes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--max-image-pixels", type=int, required=True)
    parser.add_argument("--max-video-pixels", type=int, required=True)
    parser.add_argument("--max-video-duration-s", type=float, required=True)
    parser.add_argument("--max-memory-bytes", type=int, default=None, help="address-space limit of this process")
    parser.add_argument("--max-cpu-s", type=int, default=None, help="CPU-time limit of this process")
    args = parser.parse_args(argv)
    if args.max_memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (args.max_memory_bytes, args.max_memory_bytes))
    if args.max_cpu_s is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (args.max_cpu_s, args.max_cpu_s))
    try:
        info = inspect_media(
            args.path, max_image_pixels=args.max_image_pixels, max_video_pixels=args.max_video_pixels,
            max_video_duration_s=args.max_video_duration_s,
        )  # fmt: skip
    except (MediaError, UnsupportedMediaTypeError, InvalidUploadError) as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
    else:
        print(json.dumps(dataclasses.asdict(info)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
