"""Image and video decode/encode through Pillow and PyAV on real files, good and bad."""

import io
import logging
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from core.errors import InputTooLargeError, MediaError, NotAnImageError, NotAVideoError
from core.video.decode import probe_video, read_image, read_video_frames
from core.video.encode import write_frames, write_mp4, write_png_frames
from tests.support import media


def _index_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Flat frames whose value is 20 * index, so a decoded frame tells which one it was."""
    return np.stack([np.full((height, width, 3), 20 * i, dtype=np.uint8) for i in range(num_frames)])


def _decoded_indices(frames: np.ndarray) -> list[int]:
    return [round(float(frame.mean()) / 20) for frame in frames]


# ---- video round trips -------------------------------------------------------------------------


def test_write_mp4_round_trips_frames(tmp_path: Path) -> None:
    frames = media.moving_person_frames(12)
    path = tmp_path / "out.mp4"
    write_mp4(frames, path, fps=15)

    video = read_video_frames(path, sample_stride=1)

    assert video.frames.shape == (12, 144, 176, 3) and video.frames.dtype == np.uint8
    assert video.stride == 1
    assert np.abs(video.frames.astype(np.int16) - frames).mean() < 4.0  # a frame off by one gives 9
    assert (video.info.width, video.info.height, video.info.num_frames) == (176, 144, 12)
    assert video.info.fps == 15.0 and video.info.duration_s == pytest.approx(0.8, abs=0.07)
    assert probe_video(path) == video.info


def test_write_mp4_gives_a_streamable_yuv420p_h264_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    write_mp4(_index_frames(4), path, fps=15)

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert container.format.name.startswith("mov,mp4")
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: index first
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temp file left behind


def test_write_mp4_crops_odd_sizes_to_even(tmp_path: Path) -> None:
    frames = np.repeat(media.person_image(33, 47)[None], 3, axis=0)
    path = tmp_path / "odd.mp4"
    write_mp4(frames, path, fps=10)

    video = read_video_frames(path, sample_stride=1)

    assert video.frames.shape == (3, 32, 46, 3)
    assert np.abs(video.frames.astype(np.int16) - frames[:, :32, :46]).mean() < 5.0


def test_write_mp4_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    write_mp4(_index_frames(6), path, fps=15)
    write_mp4(_index_frames(3), path, fps=15)
    assert read_video_frames(path, sample_stride=1).info.num_frames == 3


@pytest.mark.parametrize("bad", [np.zeros((0, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.float32)])
def test_write_mp4_rejects_empty_or_non_uint8_frames(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frames"):
        write_mp4(bad, tmp_path / "x.mp4", fps=15)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("codec", "name", "codec_name"),
    [
        ("libx264", "clip.mp4", "h264"),
        ("mpeg4", "clip.avi", "mpeg4"),
        ("libvpx-vp9", "clip.webm", "vp9"),
        ("mjpeg", "clip.mkv", "mjpeg"),
    ],
)
def test_read_video_frames_decodes_common_containers(tmp_path: Path, codec: str, name: str, codec_name: str) -> None:
    frames = media.moving_person_frames(10, height=48, width=64)
    path = media.write_video(tmp_path / name, frames, fps=30, codec=codec)

    info = probe_video(path)
    video = read_video_frames(path, sample_stride=1)

    assert (info.width, info.height, info.fps, info.num_frames, info.codec) == (64, 48, 30.0, 10, codec_name)
    assert info.duration_s == pytest.approx(10 / 30, abs=0.02)
    assert video.frames.shape == (10, 48, 64, 3)
    assert np.abs(video.frames.astype(np.int16) - frames).mean() < 12.0


def test_read_video_frames_keeps_every_stride_th_frame(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "30fps.mp4", _index_frames(10), fps=30)

    video = read_video_frames(path, sample_stride=2)

    assert video.stride == 2
    assert _decoded_indices(video.frames) == [0, 2, 4, 6, 8]
    assert video.info.num_frames == 10


def test_read_video_frames_doubles_the_stride_at_60_fps(tmp_path: Path) -> None:
    # reference §7 step 3: stride = sample_stride * max(1, int(60 / 24)) = 2 * 2
    path = media.write_video(tmp_path / "60fps.mp4", _index_frames(12), fps=60)

    video = read_video_frames(path, sample_stride=2)

    assert video.stride == 4
    assert _decoded_indices(video.frames) == [0, 4, 8]


def test_read_video_frames_at_a_lower_rate_skips_frames_as_the_wan_reference(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "30fps.mp4", _index_frames(10), fps=30)

    video = read_video_frames(path, target_fps=20)

    # int(10 / 30 * 20) = 6 samples; sample k is frame round(1.5 k), half to even (wan-animate-reference §3)
    assert _decoded_indices(video.frames) == [0, 2, 3, 4, 6, 8]
    assert (video.stride, video.target_fps, video.info.num_frames) == (1, 20, 10)


def test_read_video_frames_at_a_higher_rate_repeats_frames_and_clips_to_the_last(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "10fps.mp4", _index_frames(4), fps=10)

    video = read_video_frames(path, target_fps=25, max_frames=10)

    assert _decoded_indices(video.frames) == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3]  # the last one clipped from 4
    with pytest.raises(InputTooLargeError, match="10 frames, more than the limit of 9"):
        read_video_frames(path, target_fps=25, max_frames=9)


def test_read_video_frames_refuses_a_stride_and_a_rate_together(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "30fps.mp4", _index_frames(4), fps=30)
    with pytest.raises(ValueError, match="stride or at a rate"):
        read_video_frames(path, sample_stride=2, target_fps=15)


def test_read_video_frames_refuses_more_than_max_frames_from_metadata(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "long.mp4", _index_frames(10), fps=30)

    assert read_video_frames(path, sample_stride=2, max_frames=5).frames.shape[0] == 5
    with pytest.raises(InputTooLargeError) as caught:
        read_video_frames(path, sample_stride=2, max_frames=4)
    assert "10 frames" in caught.value.message and "5 frames" in caught.value.message
    assert "limit of 4" in caught.value.message


def test_read_video_frames_refuses_more_than_max_frames_while_decoding(tmp_path: Path) -> None:
    # WebM stores no frame count, so the limit trips during decoding.
    path = media.write_video(tmp_path / "long.webm", _index_frames(10), fps=30, codec="libvpx-vp9")

    with pytest.raises(InputTooLargeError, match=r"at least .* limit of 3"):
        read_video_frames(path, sample_stride=1, max_frames=3)


def test_read_video_frames_refuses_frames_over_the_pixel_limit(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "clip.mp4", _index_frames(2), fps=30)

    with pytest.raises(InputTooLargeError, match=r"64x48 = 3072 pixels, more than the limit of 3000"):
        read_video_frames(path, sample_stride=1, max_pixels_per_frame=3000)


def test_read_video_frames_keeps_what_a_truncated_file_gives(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = media.write_truncated_video(tmp_path / "truncated.mp4", num_frames=30, faststart=True)

    with caplog.at_level(logging.WARNING, logger="core.video.decode"):
        video = read_video_frames(path, sample_stride=1)

    assert 0 < video.frames.shape[0] < 30
    assert video.info.num_frames == video.frames.shape[0]
    assert video.info.duration_s == pytest.approx(video.frames.shape[0] / 30)
    assert "decoding stopped" in caplog.text


def test_read_video_frames_keeps_the_frames_before_corrupt_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = media.write_corrupt_video(tmp_path / "corrupt.mkv", num_frames=20)

    with caplog.at_level(logging.WARNING, logger="core.video.decode"):
        video = read_video_frames(path, sample_stride=1)

    assert 0 < video.frames.shape[0] < 20
    assert "decoding stopped" in caplog.text and "Invalid data" in caplog.text


def _hls_playlist(path: Path) -> Path:
    # A playlist that points FFmpeg at another local file must not be followed.
    target = media.write_video(path.with_name("target.mp4"), _index_frames(2))
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile://{target}\n#EXT-X-ENDLIST\n")
    return path


BAD_VIDEOS = {
    "garbage.mp4": (lambda p: media.write_garbage(p), NotAVideoError, "not a readable video"),
    "empty.mp4": (media.write_empty, NotAVideoError, "empty"),
    "audio_only.m4a": (media.write_audio_only, NotAVideoError, "only audio"),
    "audio_only.wav": (media.write_audio_only, NotAVideoError, "only audio"),
    "truncated_no_index.mp4": (
        lambda p: media.write_truncated_video(p, faststart=False),
        NotAVideoError,
        "not a readable video",
    ),
    "image.png": (lambda p: media.write_image(p, media.person_image()), NotAVideoError, "not a readable video"),
    "playlist.m3u8": (_hls_playlist, NotAVideoError, "not a readable video"),
    "missing.mp4": (lambda p: p, NotAVideoError, "cannot be read"),
    "huge.mkv": (media.write_huge_video, InputTooLargeError, "4160x4160 = 17305600 pixels"),
}


@pytest.mark.parametrize("name", sorted(BAD_VIDEOS))
def test_bad_videos_raise_their_typed_error(tmp_path: Path, name: str) -> None:
    write, error_class, message = BAD_VIDEOS[name]
    path = write(tmp_path / name)

    with pytest.raises(MediaError) as caught:
        read_video_frames(path, sample_stride=2)

    assert type(caught.value) is error_class
    assert message in caught.value.message and name in caught.value.message
    if error_class is NotAVideoError:
        with pytest.raises(NotAVideoError, match=name):  # the message names the file
            probe_video(path)


def test_zero_frame_video_raises_not_a_video(tmp_path: Path) -> None:
    path = media.write_zero_frame_video(tmp_path / "zero_frames.avi")
    assert probe_video(path).num_frames == 0

    with pytest.raises(NotAVideoError, match="no frame could be decoded") as caught:
        read_video_frames(path, sample_stride=1)
    assert type(caught.value) is NotAVideoError


# ---- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "tolerance"), [(".png", 0.0), (".bmp", 0.0), (".jpg", 10.0), (".webp", 8.0)])
def test_read_image_decodes_common_formats(tmp_path: Path, suffix: str, tolerance: float) -> None:
    image = media.person_image(64, 48)
    path = media.write_image(tmp_path / f"person{suffix}", image)

    decoded = read_image(path)

    assert decoded.shape == (64, 48, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(np.int16) - image).mean() <= tolerance
    np.testing.assert_array_equal(read_image(path.read_bytes()), decoded)


def test_read_image_converts_alpha_palette_and_grey_to_rgb() -> None:
    rgb = media.person_image(32, 24)
    for mode in ("RGBA", "P", "L", "LA", "I;16"):
        buffer = io.BytesIO()
        Image.fromarray(rgb).convert(mode).save(buffer, format="PNG")
        assert read_image(buffer.getvalue()).shape == (32, 24, 3), mode


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


@pytest.mark.parametrize(
    ("kind", "encode", "expected"),
    [
        # 16-bit grey once became all white (convert("RGB") clips at 255) and failed as no_person_detected:
        # each 16-bit file holds an 8-bit picture times 257, which must come back exactly.
        ("png_16_bit_grey", lambda rgb: media.png16_bytes(media.to_sixteen_bit(_grey(rgb))), "grey"),
        ("png_16_bit_rgb", lambda rgb: media.png16_bytes(media.to_sixteen_bit(rgb)), "rgb"),
        ("tiff_16_bit_big_endian", lambda rgb: _tiff_16_bit(_grey(rgb), "I;16B"), "grey"),
        ("tiff_16_bit_little_endian", lambda rgb: _tiff_16_bit(_grey(rgb), "I;16"), "grey"),
        ("tiff_32_bit_int_in_16_bit_range", lambda rgb: _tiff_int32(media.to_sixteen_bit(_grey(rgb))), "grey"),
        ("png_grey_alpha", lambda rgb: media.image_bytes_in_mode(rgb, "LA", "PNG"), "grey"),
        # 8-bit modes: exactly what the original's pil_loader (convert("RGB")) gives for the same file.
        ("png_palette", lambda rgb: media.image_bytes_in_mode(rgb, "P", "PNG"), "pil_loader"),
        ("png_one_bit", lambda rgb: media.image_bytes_in_mode(rgb, "1", "PNG"), "pil_loader"),
        ("jpeg_cmyk", lambda rgb: media.image_bytes_in_mode(rgb, "CMYK", "JPEG"), "pil_loader"),
        ("tiff_cmyk", lambda rgb: media.image_bytes_in_mode(rgb, "CMYK", "TIFF"), "rgb"),
    ],
)
def test_read_image_converts_every_accepted_mode_faithfully(kind: str, encode: Any, expected: str) -> None:
    rgb = media.person_image(64, 48, seed=3)
    data = encode(rgb)
    target = {
        "rgb": lambda: rgb,
        "grey": lambda: np.repeat(_grey(rgb)[:, :, None], 3, axis=2),
        "pil_loader": lambda: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")),
    }[expected]()

    decoded = read_image(data)

    assert decoded.shape == (64, 48, 3) and decoded.dtype == np.uint8
    assert np.array_equal(decoded, target), (kind, np.abs(decoded.astype(np.int16) - target).max())


def _tiff_16_bit(grey: np.ndarray, mode: str) -> bytes:
    samples = media.to_sixteen_bit(grey).astype(">u2" if mode == "I;16B" else "<u2")
    buffer = io.BytesIO()
    Image.frombytes(mode, (grey.shape[1], grey.shape[0]), samples.tobytes()).save(buffer, format="TIFF")
    return buffer.getvalue()


def _tiff_int32(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.int32)).save(buffer, format="TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "encode"),
    [
        ("F", lambda: _tiff_float(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(64, 48))),
        ("LAB", lambda: media.image_bytes_in_mode(media.person_image(64, 48), "LAB", "TIFF")),
        ("I", lambda: _tiff_int32(np.full((64, 48), 70_000))),  # wider than 16 bits: no known white
    ],
)
def test_read_image_refuses_modes_without_a_faithful_rgb_naming_the_mode(mode: str, encode: Any) -> None:
    with pytest.raises(NotAnImageError, match=f"pixel mode '{mode}'"):
        read_image(encode())


def _tiff_float(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="TIFF")
    return buffer.getvalue()


def test_read_image_takes_the_first_frame_of_an_animated_gif() -> None:
    first, second = Image.new("RGB", (16, 8), (255, 0, 0)), Image.new("RGB", (16, 8), (0, 0, 255))
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[second])

    decoded = read_image(buffer.getvalue())

    assert decoded.shape == (8, 16, 3) and decoded[0, 0].tolist() == [255, 0, 0]


def test_read_image_ignores_exif_orientation_like_pil_loader() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    Image.fromarray(media.person_image(64, 48)).save(buffer, format="JPEG", exif=exif)

    assert read_image(buffer.getvalue()).shape == (64, 48, 3)


def _eps_bytes() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"


BAD_IMAGES = {
    "garbage": (media.garbage_bytes, NotAnImageError, "not a supported image"),
    "empty": (lambda: b"", NotAnImageError, "empty"),
    "truncated": (media.truncated_png_bytes, NotAnImageError, "truncated, corrupt or not an image"),
    "eps": (_eps_bytes, NotAnImageError, "not a supported image"),
    "bomb_over_pillow_error_limit": (lambda: media.png_bomb_bytes(30000, 30000), InputTooLargeError, "too large"),
    "bomb_over_pillow_warning_limit": (lambda: media.png_bomb_bytes(10000, 10000), InputTooLargeError, "too large"),
    "bomb_over_our_limit": (
        lambda: media.png_bomb_bytes(7000, 7000),
        InputTooLargeError,
        "7000x7000 = 49000000 pixels, more than the limit of 40000000",
    ),
    "text_chunk_bomb": (media.png_text_bomb_bytes, InputTooLargeError, "compressed metadata"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_raise_their_typed_error(name: str) -> None:
    make, error_class, message = BAD_IMAGES[name]
    data = make()

    with pytest.raises(MediaError) as caught:
        read_image(data)

    assert type(caught.value) is error_class
    assert message in caught.value.message


def test_read_image_refuses_more_than_max_pixels_before_decoding() -> None:
    buffer = io.BytesIO()
    Image.fromarray(media.flat_image(100, 100)).save(buffer, format="PNG")

    with pytest.raises(InputTooLargeError, match="100x100 = 10000 pixels, more than the limit of 5000"):
        read_image(buffer.getvalue(), max_pixels=5000)


def test_read_image_names_a_missing_or_non_image_file(tmp_path: Path) -> None:
    with pytest.raises(NotAnImageError, match=r"'missing\.png' cannot be read"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(NotAnImageError, match=r"'empty\.png' is empty"):
        read_image(media.write_empty(tmp_path / "empty.png"))
    video = media.write_video(tmp_path / "clip.mp4", _index_frames(2))
    with pytest.raises(NotAnImageError, match=r"'clip\.mp4' is not a supported image"):
        read_image(video)


# ---- PNG frame directories ---------------------------------------------------------------------


def test_write_png_frames_is_lossless_and_numbered(tmp_path: Path) -> None:
    frames = media.moving_person_frames(3, height=32, width=40)

    paths = write_png_frames(frames, tmp_path / "frames")

    assert [p.name for p in paths] == ["00000.png", "00001.png", "00002.png"]
    for path, frame in zip(paths, frames, strict=True):
        np.testing.assert_array_equal(read_image(path), frame)


def test_write_png_frames_removes_stale_numbered_frames_only(tmp_path: Path) -> None:
    directory = tmp_path / "frames"
    write_png_frames(_index_frames(5, 8, 8), directory)
    (directory / "notes.txt").write_text("keep me")

    write_png_frames(_index_frames(2, 8, 8), directory)

    assert sorted(p.name for p in directory.iterdir()) == ["00000.png", "00001.png", "notes.txt"]


@pytest.mark.parametrize("name", ["result.mp4", "result.MP4"])
def test_write_frames_writes_mp4_for_an_mp4_path(tmp_path: Path, name: str) -> None:
    write_frames(_index_frames(3), tmp_path / name, fps=15)
    assert probe_video(tmp_path / name).codec == "h264"


def test_write_frames_writes_a_png_directory_otherwise(tmp_path: Path) -> None:
    write_frames(_index_frames(3), tmp_path / "result", fps=15)
    assert sorted(p.name for p in (tmp_path / "result").iterdir()) == ["00000.png", "00001.png", "00002.png"]
