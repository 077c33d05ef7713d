"""fetch_job_inputs: a job's image and video, downloaded through the URL guard (or read from storage for
``upload://`` inputs) and decoded.

Used by the job run and by the worker's prefetch of the next queued job.
"""

from pathlib import Path

import numpy as np

from core.backends.registry import backend_for
from core.contract.records import Job
from core.contract.uploads import upload_id_of
from core.errors import InputTooLargeError, InputUnreachableError, UploadNotFoundError
from core.jobs.keys import KeyedRedis
from core.jobs.uploads import Uploads
from core.network.download import fetch_to_file
from core.settings import Settings
from core.storage import MissingObjectError, Storage
from core.video.decode import DecodedVideo, read_image, read_video_frames

VIDEO_FILE = "video"  # the name of the driving video's bytes in fetch_job_inputs's folder (the pose cache hashes it)


def fetch_job_inputs(
    job: Job, settings: Settings, tmp: Path, *, storage: Storage, db: KeyedRedis
) -> tuple[np.ndarray, DecodedVideo]:
    """Download and decode a job's image and video into ``tmp`` (also used to prepare a queued job ahead)."""
    # Each input is sniffed (the image decodes, the video probes and decodes) right after its
    # download, so a bad image fails the job before a large video is fetched.
    _fetch(job, job.image_url, tmp / "image", settings.fetch_max_image_bytes, settings, storage, db, label="image")
    image = read_image(tmp / "image", max_pixels=settings.max_image_pixels)
    _fetch(job, job.video_url, tmp / VIDEO_FILE, settings.fetch_max_video_bytes, settings, storage, db, label="video")
    sampling = backend_for(job.model).frame_sampling(job.params)
    video = read_video_frames(
        tmp / VIDEO_FILE, sample_stride=sampling.sample_stride, target_fps=sampling.target_fps,
        max_frames=settings.max_video_frames,
        max_pixels_per_frame=settings.max_video_pixels, max_duration_s=settings.max_video_duration_s,
        max_decoded_bytes=settings.max_decoded_video_bytes, held_bytes_per_frame=_held_bytes_per_frame(job, image),
    )  # fmt: skip
    return image, video


def _fetch(
    job: Job, url: str, dest: Path, max_bytes: int, settings: Settings, storage: Storage, db: KeyedRedis, *, label: str
) -> None:
    upload_id = upload_id_of(url)
    if upload_id is None:
        fetch_to_file(
            url, dest, max_bytes=max_bytes, timeout_s=settings.fetch_timeout_s,
            allowed_networks=settings.fetch_allowed_networks, label=label,
        )  # fmt: skip
        return
    # An upload: read from storage, no HTTP (nothing to guard). Its owner must be the job's, as the gateway
    # checked; a deleted or expired one fails the job clearly.
    try:
        upload = Uploads(db).get(upload_id, owner=job.owner)
        storage.get_file(upload.key, dest)
    except (UploadNotFoundError, MissingObjectError):
        raise InputUnreachableError(f"the {label} upload {upload_id} no longer exists (deleted or expired)") from None
    if (size := dest.stat().st_size) > max_bytes:
        raise InputTooLargeError(f"the {label} upload is {size} bytes, more than the limit of {max_bytes}")


def _held_bytes_per_frame(job: Job, image: np.ndarray) -> int:
    """What a job holds in host memory per driving frame besides the frame itself: its drawn pose and its
    generated frame, each (H_t, W_t, 3) uint8 at the output size (core.animate.Animation)."""
    height, width = backend_for(job.model).output_size((image.shape[0], image.shape[1]), job.params)
    return 2 * height * width * 3
