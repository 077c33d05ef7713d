"""Decode input media: still images with Pillow, videos with PyAV (FFmpeg).

Every failure leaves as a typed ``MediaError`` (``NotAnImageError``, ``NotAVideoError``,
``InputTooLargeError``) with a message for the user; no raw PIL or FFmpeg exception escapes.
No torch here.
"""

import io
import logging
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import av.error
import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import InputTooLargeError, NotAnImageError, NotAVideoError
from core.video.image_modes import check_image_mode, image_to_rgb
from core.video.sampling import RateSampling, StrideSampling

logger = logging.getLogger(__name__)

# Pillow plugins we accept. EPS is left out because Pillow runs Ghostscript on it, and the rarer
# plugins (FITS, PSD, ...) only widen the attack surface of user uploads.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "PPM", "TGA")

# FFmpeg demuxers we accept (matched by name against "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...).
# Without this list FFmpeg would also open playlists (hls, concat) that read other files or URLs, and
# render text files as video (tty). The audio formats are here only to say "only audio" clearly.
VIDEO_FORMATS = "mov,matroska,avi,flv,mpegts,mpeg,ogg,asf,gif,apng,h264,hevc,ivf,wav,mp3,flac,aac"
VIDEO_OPEN_OPTIONS = {"format_whitelist": VIDEO_FORMATS, "protocol_whitelist": "file"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream says about itself.

    ``num_frames`` is the decoded count after ``read_video_frames``; from ``probe_video`` it is the
    container's count, or ``round(duration_s * fps)`` where the container has none (WebM, MKV).
    ``fps`` is the stream's average frame rate, 0.0 when the container gives no rate at all.
    """

    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    codec: str


@dataclass(frozen=True)
class DecodedVideo:
    """Sampled frames of a video.

    ``frames``: (N, h, w, 3) uint8 RGB, the decoded frames 0, stride, 2*stride, ... (or, with ``target_fps``,
    the frames ``rate_frame_indices`` picks);
    ``info``: the stream, with ``num_frames`` the number of frames decoded (before sampling);
    ``stride``: the sampling step actually used (``frame_stride(sample_stride, info.fps)``); 1 when sampled at
    a rate, where no step applies and ``target_fps`` with ``info`` decides the frames;
    ``target_fps``: the rate sampled at, None for stride sampling.
    """

    frames: np.ndarray
    info: VideoInfo
    stride: int
    target_fps: float | None = None


def read_image(source: Path | bytes, *, max_pixels: int = 40_000_000) -> np.ndarray:
    """Decode an image file or bytes to (H, W, 3) uint8 RGB, as the original's ``pil_loader`` does.

    Like ``pil_loader``, this ignores EXIF orientation: a phone photo stored sideways stays sideways.
    Animated images give their first frame.

    Raises:
        NotAnImageError: missing, empty, truncated or not an image in an accepted format.
        InputTooLargeError: more than ``max_pixels`` pixels, checked from the header before decoding.
    """
    if isinstance(source, bytes):
        if not source:
            raise NotAnImageError("the image is empty (0 bytes)")
        stream: BinaryIO = io.BytesIO(source)
        name = "the image"
    else:
        name = f"image {Path(source).name!r}"
        try:
            if Path(source).stat().st_size == 0:
                raise NotAnImageError(f"{name} is empty (0 bytes)")
            stream = open(source, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            raise NotAnImageError(f"{name} cannot be read: {exc.strerror or exc}") from exc
    try:
        return _decode_image(stream, name, max_pixels)
    finally:
        stream.close()


def _decode_image(stream: BinaryIO, name: str, max_pixels: int) -> np.ndarray:
    # 1. Open reads only the header. Pillow's own bomb check runs here; its warning becomes an error.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=_image_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputTooLargeError(f"{name} is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            f"{name} is not a supported image (accepted formats: {', '.join(IMAGE_FORMATS)})"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise _undecodable_image(name, exc) from exc
    # 2. Size check before any pixel is decoded.
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise NotAnImageError(f"{name} has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise InputTooLargeError(
                f"{name} is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}"
            )
        # 3. Decode to 8-bit RGB, faithfully for every mode we accept (the mode is known from the header).
        check_image_mode(image.mode, name)
        try:
            return image_to_rgb(image, name)
        except (OSError, ValueError, SyntaxError) as exc:
            raise _undecodable_image(name, exc) from exc


def _undecodable_image(name: str, exc: Exception) -> NotAnImageError | InputTooLargeError:
    # Pillow refuses oversized compressed metadata (PNG text or ICC chunks) with a ValueError that
    # reads "... too large ..."; that is a decompression bomb, not a broken file.
    if isinstance(exc, ValueError) and "too large" in str(exc).lower():
        return InputTooLargeError(f"{name} holds too much compressed metadata to decode safely ({exc})")
    return NotAnImageError(f"{name} is truncated, corrupt or not an image ({exc})")


def _image_formats() -> list[str]:
    Image.init()
    return [name for name in IMAGE_FORMATS if name in Image.OPEN]


def frame_stride(sample_stride: int, fps: float) -> int:
    """Frames between samples: ``sample_stride * max(1, int(fps / 24))`` (reference §7 step 3).

    30 fps with sample_stride 2 gives 2; 60 fps gives 4.
    """
    if sample_stride < 1:
        raise ValueError(f"sample_stride must be >= 1, got {sample_stride}")
    return sample_stride * max(1, int(fps / 24))


def probe_video(source: Path) -> VideoInfo:
    """Read a video's size, rate, frame count, duration and codec from its container, decoding nothing.

    Raises:
        NotAVideoError: missing, empty, corrupt, unsupported container, or no video stream.
    """
    name = f"video {Path(source).name!r}"
    with _open_video(source, name) as container:
        return _stream_info(container, _video_stream(container, name))


def read_video_frames(
    source: Path,
    *,
    sample_stride: int = 1,
    max_frames: int | None = None,
    max_pixels_per_frame: int = 4096 * 4096,
    max_duration_s: float | None = None,
    max_decoded_bytes: int | None = None,
    held_bytes_per_frame: int = 0,
    target_fps: float | None = None,
) -> DecodedVideo:
    """Decode a video sequentially and keep every ``frame_stride(sample_stride, fps)``-th frame, or, with
    ``target_fps``, the frames that sample it at that rate.

    Matches the original's decord read (reference §7 step 3): frames 0, stride, 2*stride, ... in RGB
    at native resolution. With ``target_fps`` it matches Wan-Animate's (wan-animate-reference §3, "Frame
    sampling", ``rate_frame_indices``), counting the frames decoded rather than the container's count (the
    reference's 10 % check against the timestamps only matters where the two disagree); a stream without a
    frame rate keeps every frame. A frame can be kept more than once when ``target_fps`` exceeds the
    source rate; it is converted once. Like decord, rotation metadata (phone videos) is ignored: frames come out as
    stored. A file that breaks off part-way (truncated upload, corrupt packet) keeps the frames decoded
    before the break, with a warning in the log; no frame at all is an error.

    The kept frames are written into one array as they decode; the frames the stride drops are never
    converted, and nothing is copied at the end. ``max_decoded_bytes`` bounds that array
    (samples x width x height x 3) plus ``held_bytes_per_frame`` per sample (what the caller will hold
    for each, e.g. the pipeline's pose and output frames): a few kilobytes of flat frames can decode
    to gigabytes (issue 19). The limits count samples, with either sampling.

    Raises:
        ValueError: both ``target_fps`` and a ``sample_stride`` other than 1.
        NotAVideoError: unreadable, corrupt, audio-only, no video stream, or zero frames decoded.
        InputTooLargeError: frames over ``max_pixels_per_frame``, more than ``max_frames`` samples, longer
            than ``max_duration_s``, or samples over ``max_decoded_bytes`` (each by its header, and again
            by the frames decoded).
    """
    name = f"video {Path(source).name!r}"
    with _open_video(source, name) as container:
        stream = _video_stream(container, name)
        probed = _stream_info(container, stream)
        sampling = _sampling(sample_stride, target_fps, probed.fps, name)
        # 1. Refuse from the metadata before decoding, when the metadata already says too much.
        _check_frame_size(probed.width, probed.height, max_pixels_per_frame, name)
        if max_duration_s is not None:
            _check_duration(probed.duration_s, max_duration_s, name)
        if max_frames is not None and stream.frames > 0:
            _check_num_samples(sampling.num_samples(stream.frames), max_frames, stream.frames, sampling, name)
        expected_samples = sampling.num_samples(probed.num_frames) if probed.num_frames > 0 else 0
        limits = _SampleLimits(
            max_frames, max_pixels_per_frame, max_duration_s, max_decoded_bytes, held_bytes_per_frame
        )
        if expected_samples:
            limits.check_bytes(expected_samples, probed.width, probed.height, sampling, name)
        # 2. Decode everything, keep the sampled frames.
        stream.thread_type = "AUTO"
        most = limits.max_samples(probed.width, probed.height)
        frames = _SampledFrames((most if most is not None else expected_samples + 1) + sampling.overshoot)
        num_decoded, is_complete, last = _decode_sampled(container, stream, sampling, frames, limits, name, probed.fps)
        if frames.count == 0 and last is None:
            raise NotAVideoError(f"{name} has a video stream but no frame could be decoded (zero frames)")
        # 3. Rate sampling: cut the surplus, or repeat the last frame for the samples clipped onto it.
        if isinstance(sampling, RateSampling):
            _finish_rate_sampling(frames, sampling.num_samples(num_decoded), last, limits, num_decoded, sampling, name)
    if frames.count == 0:
        raise NotAVideoError(
            f"{name} is too short to give one frame {sampling.description} ({num_decoded} frames at {probed.fps:g} fps)"
        )
    height, width = frames.frame_shape
    # 3. A video cut short lasts as long as the frames it gave, not as long as its header claims.
    duration_s = probed.duration_s
    if (not is_complete or duration_s <= 0) and probed.fps > 0:
        duration_s = num_decoded / probed.fps
    info = VideoInfo(width, height, probed.fps, num_decoded, duration_s, probed.codec)
    stride = sampling.stride if isinstance(sampling, StrideSampling) else 1
    return DecodedVideo(frames=frames.array(), info=info, stride=stride, target_fps=target_fps)


def _sampling(sample_stride: int, target_fps: float | None, fps: float, name: str) -> StrideSampling | RateSampling:
    if target_fps is None:
        return StrideSampling(frame_stride(sample_stride, fps))
    if sample_stride != 1:
        raise ValueError(f"sample either at a stride or at a rate: sample_stride {sample_stride} with target_fps")
    if target_fps <= 0:
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    if fps <= 0:
        logger.warning("%s has no frame rate; keeping every frame instead of sampling at %g fps", name, target_fps)
        return StrideSampling(1)
    return RateSampling(fps, target_fps)


def _finish_rate_sampling(
    frames: "_SampledFrames",
    num_samples: int,
    last: "av.VideoFrame | None",
    limits: "_SampleLimits",
    num_decoded: int,
    sampling: RateSampling,
    name: str,
) -> None:
    if limits.max_frames is not None:
        _check_num_samples(num_samples, limits.max_frames, num_decoded, sampling, name)
    if frames.count > num_samples:
        frames.truncate(num_samples)
    elif frames.count < num_samples and last is not None:
        limits.check_bytes(num_samples, last.width, last.height, sampling, name)
        pixels = last.to_ndarray(format="rgb24")
        while frames.count < num_samples:
            frames.append(pixels)


@dataclass(frozen=True)
class _SampleLimits:
    max_frames: int | None
    max_pixels_per_frame: int
    max_duration_s: float | None
    max_decoded_bytes: int | None
    held_bytes_per_frame: int = 0

    def max_samples(self, width: int, height: int) -> int | None:
        """Most frames that may be kept at this size, by the frame and byte caps; None without either."""
        by_bytes = None
        if self.max_decoded_bytes is not None and width > 0 and height > 0:
            by_bytes = max(self.max_decoded_bytes // (width * height * 3 + self.held_bytes_per_frame), 1)
        caps = [cap for cap in (self.max_frames, by_bytes) if cap is not None]
        return min(caps) if caps else None

    def check_bytes(
        self,
        num_samples: int,
        width: int,
        height: int,
        sampling: StrideSampling | RateSampling,
        name: str,
        *,
        at_least: bool = False,
    ) -> None:
        if self.max_decoded_bytes is None:
            return
        size = num_samples * (width * height * 3 + self.held_bytes_per_frame)
        if size > self.max_decoded_bytes:
            more = "at least " if at_least else ""
            held = " with what the job holds for each" if self.held_bytes_per_frame else ""
            raise InputTooLargeError(
                f"{name} gives {more}{num_samples} frames of {width}x{height} {sampling.description}, "
                f"{more}{size / 2**20:,.0f} MiB decoded{held}, more than the limit of "
                f"{self.max_decoded_bytes / 2**20:,.0f} MiB; use a shorter or smaller video, or {sampling.remedy}"
            )


class _SampledFrames:
    """The kept frames, written in place into one (N, h, w, 3) uint8 array as they decode.

    No list of frames and no ``np.stack`` at the end (which held every frame twice at the peak). With
    caps, the array has room for the most frames they allow, so it never grows: ``np.empty`` commits a
    page only when it is written, and room left unused costs address space, not memory. Without caps
    (the CLI), it is sized for the frames the header announces and doubles if it must.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 1)
        self._array: np.ndarray | None = None
        self.count = 0

    @property
    def frame_shape(self) -> tuple[int, int]:
        assert self._array is not None
        return self._array.shape[1], self._array.shape[2]

    def append(self, frame: np.ndarray) -> None:
        if self._array is None:
            self._array = np.empty((self._capacity, *frame.shape), dtype=np.uint8)
        elif self.count == len(self._array):
            grown = np.empty((2 * len(self._array), *self._array.shape[1:]), dtype=np.uint8)
            grown[: self.count] = self._array
            self._array = grown
        self._array[self.count] = frame
        self.count += 1

    def array(self) -> np.ndarray:
        assert self._array is not None
        return self._array[: self.count]

    def truncate(self, count: int) -> None:
        self.count = min(self.count, count)


def _decode_sampled(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    sampling: StrideSampling | RateSampling,
    frames: _SampledFrames,
    limits: _SampleLimits,
    name: str,
    fps: float = 0.0,
) -> tuple[int, bool, av.VideoFrame | None]:
    """Decode in order into ``frames``; return the number of frames decoded, whether the stream
    decoded to its end, and the last frame decoded (rate sampling may repeat it)."""
    num_decoded = 0
    last = None
    try:
        for frame in container.decode(stream):
            # A header can understate the length (or give none): the frames' own clock decides too.
            if limits.max_duration_s is not None:
                elapsed_s = frame.time if frame.time is not None else (num_decoded / fps if fps > 0 else 0.0)
                _check_duration(elapsed_s, limits.max_duration_s, name, at_least=True)
            copies = sampling.copies(num_decoded)
            if copies:
                _check_sample(frame, frames, limits, num_decoded, sampling, name, copies)
                pixels = frame.to_ndarray(format="rgb24")
                for _ in range(copies):
                    frames.append(pixels)
            last = frame
            num_decoded += 1
    except (av.error.FFmpegError, ValueError) as exc:
        # Keep what decoded before the break; the caller refuses zero frames.
        logger.warning("%s: decoding stopped after %d frames: %s", name, num_decoded, exc)
        return num_decoded, False, last
    # A file cut at a packet boundary ends without an error, but short of the count in its header.
    if 0 < num_decoded < stream.frames:
        logger.warning("%s: decoding stopped after %d of %d frames", name, num_decoded, stream.frames)
        return num_decoded, False, last
    return num_decoded, True, last


def _check_sample(
    frame: av.VideoFrame,
    frames: _SampledFrames,
    limits: _SampleLimits,
    num_decoded: int,
    sampling: StrideSampling | RateSampling,
    name: str,
    copies: int = 1,
) -> None:
    """The checks on a frame about to be kept ``copies`` times, before it is converted. Rate sampling may
    keep ``sampling.overshoot`` frames more than its final count while decoding: they are allowed here and
    checked again once the count is known."""
    # The stream's size can change mid-stream; check every frame we keep.
    _check_frame_size(frame.width, frame.height, limits.max_pixels_per_frame, name)
    if frames.count and (frame.height, frame.width) != frames.frame_shape:
        height, width = frames.frame_shape
        raise NotAVideoError(f"{name} changes frame size mid-stream ({width}x{height} to {frame.width}x{frame.height})")
    at_least_samples = frames.count + copies - sampling.overshoot
    if limits.max_frames is not None and at_least_samples > limits.max_frames:
        _check_num_samples(at_least_samples, limits.max_frames, num_decoded + 1, sampling, name, at_least=True)
    limits.check_bytes(at_least_samples, frame.width, frame.height, sampling, name, at_least=True)


def _open_video(source: Path, name: str) -> av.container.InputContainer:
    path = Path(source)
    try:
        if path.stat().st_size == 0:
            raise NotAVideoError(f"{name} is empty (0 bytes)")
    except OSError as exc:
        raise NotAVideoError(f"{name} cannot be read: {exc.strerror or exc}") from exc
    try:
        return av.open(str(path), mode="r", options=VIDEO_OPEN_OPTIONS)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise NotAVideoError(f"{name} is not a readable video (corrupt, truncated or unsupported container)") from exc


def _video_stream(container: av.container.InputContainer, name: str) -> av.VideoStream:
    # Cover art in audio files is a one-frame "video" stream marked attached_pic; it is not a video.
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        has_audio = bool(container.streams.audio)
        detail = "only audio" if has_audio else "no video stream"
        raise NotAVideoError(f"{name} has {detail}; a video with moving pictures is needed")
    return streams[0]


def _stream_info(container: av.container.InputContainer, stream: av.VideoStream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * Fraction(stream.time_base))
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    else:
        duration_s = 0.0
    num_frames = stream.frames if stream.frames > 0 else round(duration_s * fps)
    codec = stream.codec_context.name if stream.codec_context is not None else "unknown"
    return VideoInfo(stream.width, stream.height, fps, num_frames, duration_s, codec)


def _check_frame_size(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels:
        raise InputTooLargeError(
            f"{name} frames are {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}"
        )


def _check_duration(duration_s: float, max_duration_s: float, name: str, *, at_least: bool = False) -> None:
    if duration_s > max_duration_s:
        more = "at least " if at_least else ""
        raise InputTooLargeError(
            f"{name} lasts {more}{duration_s:.2f} s, longer than the limit of {max_duration_s:g} s; "
            "trim the driving video"
        )


def _check_num_samples(
    num_samples: int,
    max_frames: int,
    num_frames: int,
    sampling: StrideSampling | RateSampling,
    name: str,
    *,
    at_least: bool = False,
) -> None:
    if num_samples > max_frames:
        more = "at least " if at_least else ""
        raise InputTooLargeError(
            f"{name} has {more}{num_frames} frames, which {sampling.description} gives {more}"
            f"{num_samples} frames, more than the limit of {max_frames}; use a shorter video or {sampling.remedy}"
        )
