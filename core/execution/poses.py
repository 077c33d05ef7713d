"""A job's pose stage with the driving-pose cache: detect the driving video's poses once, reuse them after.

Many users drive different photos with the same clip. The DWPose keypoints and scores of the sampled driving
frames (before alignment, which depends on the reference) are kept under a fingerprint of everything that
decides them: the video's bytes, the frame sampling, the frames' count and size, the decoder, the DWPose
files and how onnxruntime runs them. A job whose driving video is cached detects only its reference image;
its pose frames are the same bits a cold run draws. Entries are per API key unless ``pose_cache_shared``:
a cache shared across keys would tell one tenant (by a faster job) which clips another has processed.

The cache is only a saving: a corrupt entry is a miss, and Redis or storage failing while caching is a
warning, never a failed job.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from core.backends.base import LoadedModel, ModelDirectory, PreparedConditioning
from core.backends.registry import backend_for
from core.contract.records import CacheUse, Job, JobCache
from core.contract.stages import Stage, StageTimer
from core.jobs.keys import KeyedRedis
from core.jobs.pose_cache import PoseCacheStore
from core.pose.archive import ARCHIVE_FORMAT, PoseArchiveError, pack_poses, unpack_poses
from core.pose.extract import DRIVING_BATCH_SIZE
from core.pose.records import Pose
from core.pose.wholebody import WholebodyEstimator
from core.settings import Settings
from core.storage import Storage, file_sha256
from core.video.decode import DecodedVideo

logger = logging.getLogger(__name__)

SHARED_SCOPE = "shared"


def estimator_identity(files: ModelDirectory, estimator: WholebodyEstimator) -> str:
    """A digest of what decides the estimator's numbers: both DWPose files' bytes and how they run.

    Hashing the files reads them whole (about 330 MB for the released ones): a worker does it once, at start.
    """
    parts = {
        "detector_sha256": file_sha256(files.detector), "pose_model_sha256": file_sha256(files.pose_model),
        "driving_batch_size": DRIVING_BATCH_SIZE, **estimator.runtime(),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class JobPoses:
    """The pose stage's result, and what it took from the cache (None: no cache)."""

    posed: PreparedConditioning
    cache: JobCache | None


class DrivingPoseCache:
    """One worker process's view of the cache: entry names for its estimator, reads and writes that never raise."""

    def __init__(self, store: PoseCacheStore, *, estimator_identity: str, shared: bool = False) -> None:
        self.store, self.estimator_identity, self.shared = store, estimator_identity, shared
        # Called with "hit" or "miss" after each lookup (the job's and the prefetch's); the worker's metrics.
        self.on_lookup: Callable[[CacheUse], None] = lambda result: None

    @classmethod
    def for_worker(
        cls, settings: Settings, db: KeyedRedis, storage: Storage, files: ModelDirectory, estimator: WholebodyEstimator
    ) -> "DrivingPoseCache | None":
        """The cache a worker uses with these settings; None when ``pose_cache_max_bytes`` is 0 (off)."""
        if settings.pose_cache_max_bytes == 0:
            return None
        store = PoseCacheStore(
            db, storage, max_bytes=settings.pose_cache_max_bytes, scratch=settings.data_dir / "scratch"
        )
        return cls(store, estimator_identity=estimator_identity(files, estimator), shared=settings.pose_cache_shared)

    def entry_name(self, job: Job, video: DecodedVideo, video_sha256: str) -> str:
        """``{scope}/{fingerprint}``: the scope is the job's key (hashed again: any owner string makes a safe
        storage key) or ``shared``; the fingerprint covers everything that changes which frames are detected,
        at what size, and with what numbers."""
        num_frames, height, width = video.frames.shape[:3]
        parts = {
            "archive_format": ARCHIVE_FORMAT, "video_sha256": video_sha256,
            "sampling": vars(backend_for(job.model).frame_sampling(job.params)), "stride": video.stride,
            "fps": video.info.fps,
            "num_frames": num_frames, "frame_size": [height, width], "decoder": f"pyav {av.__version__}",
            "estimator": self.estimator_identity,
        }  # fmt: skip
        fingerprint = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
        scope = SHARED_SCOPE if self.shared else f"key-{hashlib.sha256(job.owner.encode()).hexdigest()[:32]}"
        return f"{scope}/{fingerprint}"

    def lookup(self, name: str, num_frames: int) -> list[Pose] | None:
        """The entry's poses, or None (a miss) when there is none or it cannot be read or used."""
        poses = self._read(name, num_frames)
        self.on_lookup("hit" if poses is not None else "miss")
        return poses

    def _read(self, name: str, num_frames: int) -> list[Pose] | None:
        try:
            data = self.store.get(name)
            if data is None:
                return None
            poses = unpack_poses(data)
            if len(poses) != num_frames:
                raise PoseArchiveError(f"{len(poses)} poses for {num_frames} frames")
            return poses
        except PoseArchiveError as exc:
            logger.warning("pose cache entry %s is unusable, detecting again: %s", name, exc)
        except Exception as exc:  # the cache only saves time: any fault of it means detecting as without it
            logger.warning("pose cache not read (%s: %s); detecting the driving poses", type(exc).__name__, exc)
        return None

    def save(self, name: str, poses: list[Pose]) -> None:
        """Store the poses under ``name``; a failure is logged, never raised."""
        try:
            data = pack_poses(poses)
            evicted = self.store.put(name, data)
            logger.info("pose cache: stored %s (%d bytes, %d frames), %d evicted", name, len(data), len(poses), evicted)
        except Exception as exc:
            logger.warning("pose cache entry %s not stored (%s: %s)", name, type(exc).__name__, exc)


def prepare_job_poses(
    job: Job,
    image: np.ndarray,
    video: DecodedVideo,
    video_file: Path,
    model: LoadedModel,
    cache: DrivingPoseCache | None,
) -> JobPoses:
    """Stage 2 of a job: ``model.prepare``, with the driving poses from ``cache`` when it holds them.

    ``video_file`` is the driving video's bytes as fetched (hashed for the cache key). ``timings["pose"]``
    covers the whole stage, the cache's reads and writes included.

    Raises:
        NoPersonError: no person in the reference image or the driving frames.
    """
    timer = StageTimer()
    with timer.stage(Stage.pose):
        if cache is None:
            posed, use = model.prepare(image, video.frames, job.params), None
        else:
            name = cache.entry_name(job, video, file_sha256(video_file))
            cached = cache.lookup(name, num_frames=video.frames.shape[0])
            posed = model.prepare(image, video.frames, job.params, driving_poses=cached)
            if cached is None:
                cache.save(name, posed.driving_poses)
            use = JobCache(driving_pose="hit" if cached is not None else "miss")
    posed.timings.clear()  # the stage's whole time, the cache's reads and writes included
    posed.timings.update(timer.timings)
    return JobPoses(posed, use)
