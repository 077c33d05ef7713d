"""fetch_job_inputs: a job's image and video, downloaded through the URL guard and decoded.

Used by the job run and by the worker's prefetch of the next queued job.
"""

from pathlib import Path

import numpy as np

from core.contract.records import Job
from core.network.download import fetch_to_file
from core.settings import Settings
from core.video.decode import DecodedVideo, read_image, read_video_frames
from core.video.frames import target_size


def fetch_job_inputs(job: Job, settings: Settings, tmp: Path) -> tuple[np.ndarray, DecodedVideo]:
    """Download and decode a job's image and video into ``tmp`` (also used to prepare a queued job ahead)."""
    networks = settings.fetch_allowed_networks
    # Each input is sniffed (the image decodes, the video probes and decodes) right after its
    # download, so a bad image fails the job before a large video is fetched.
    fetch_to_file(
        job.image_url, tmp / "image", max_bytes=settings.fetch_max_image_bytes,
        timeout_s=settings.fetch_timeout_s, allowed_networks=networks, label="image",
    )  # fmt: skip
    image = read_image(tmp / "image", max_pixels=settings.max_image_pixels)
    fetch_to_file(
        job.video_url, tmp / "video", max_bytes=settings.fetch_max_video_bytes,
        timeout_s=settings.fetch_timeout_s, allowed_networks=networks, label="video",
    )  # fmt: skip
    video = read_video_frames(
        tmp / "video", sample_stride=job.params.sample_stride, max_frames=settings.max_video_frames,
        max_pixels_per_frame=settings.max_video_pixels, max_duration_s=settings.max_video_duration_s,
        max_decoded_bytes=settings.max_decoded_video_bytes, held_bytes_per_frame=_held_bytes_per_frame(job, image),
    )  # fmt: skip
    return image, video


def _held_bytes_per_frame(job: Job, image: np.ndarray) -> int:
    """What a job holds in host memory per driving frame besides the frame itself: its drawn pose and its
    generated frame, each (H_t, W_t, 3) uint8 at the output size (core.animate.Animation)."""
    height, width = target_size(image.shape[0], image.shape[1], job.params.resolution)
    return 2 * height * width * 3
