"""The driving-pose cache through run_job: real Redis, local storage, the tiny model, inputs over loopback HTTP.

DWPose is counted, not timed: a spy around the real estimator counts the images it is given, so "the hit
skipped detection" is an exact number, never a timing.
"""

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.animate import Animator
from core.contract.public import JobView, public_fields
from core.contract.records import Job, JobStatus
from core.execution.poses import DrivingPoseCache, estimator_identity, prepare_job_poses
from core.execution.run import RunDeps, run_job
from core.jobs.keys import KeyedRedis
from core.jobs.pose_cache import PoseCacheStore
from core.jobs.store import JobStore
from core.models.files import resolve_model_files
from core.pose.archive import unpack_poses
from core.pose.records import Pose
from core.settings import Settings
from core.storage import LocalStorage, create_storage
from core.video.decode import read_image, read_video_frames
from tests.support.input_files import input_server, write_inputs
from tests.support.jobs import TINY_PARAMS, create_job
from tests.support.media import person_image, write_image
from tests.support.worker_settings import worker_settings
from worker.prefetch import Prefetcher

NUM_SAMPLES = 9  # drive.mp4: 17 frames, sample_stride 2


class CountingEstimator:
    """The real estimator, counting the images it is given (the reference image is one per job)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.images = inner, 0

    def estimate(self, image: np.ndarray) -> Pose:
        return self.estimate_batch([image])[0]

    def estimate_batch(self, images: Sequence[np.ndarray]) -> list[Pose]:
        self.images += len(images)
        return self.inner.estimate_batch(images)  # type: ignore[no-any-return]


class PoseFramesSpy:
    """The real pipeline, keeping the pose frames each job hands to its conditioning stage."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.pose_frames = inner, []  # type: list[np.ndarray]

    def prepare_denoising(self, reference_image: np.ndarray, pose_frames: np.ndarray, **kwargs: Any) -> Any:
        self.pose_frames.append(pose_frames.copy())
        return self.inner.prepare_denoising(reference_image, pose_frames, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def two_people_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """person.png, other-person.png (another photo) and drive.mp4 (17 frames)."""
    directory = write_inputs(tmp_path_factory.mktemp("pose-cache-inputs"), num_frames=17)
    write_image(directory / "other-person.png", person_image(180, 140, seed=5))
    with input_server(directory) as server:
        yield server.url


@pytest.fixture(scope="module")
def identity(tiny_model_dir: Path, animator: Animator) -> str:
    return estimator_identity(resolve_model_files(tiny_model_dir), animator.estimator)


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path, redis_url: str) -> Settings:
    return worker_settings(tmp_path, redis_url, tiny_model_dir)


@pytest.fixture
def store(settings: Settings) -> JobStore:
    return JobStore.from_url(settings.redis_url)


@pytest.fixture
def cache_store(settings: Settings, store: JobStore) -> PoseCacheStore:
    return PoseCacheStore(store.db, create_storage(settings), max_bytes=10**8, scratch=settings.data_dir / "scratch")


class Worker:
    """One in-process worker: run_job with a counting estimator, a pose-frame spy and a given pose cache."""

    def __init__(self, settings: Settings, store: JobStore, animator: Animator, cache: DrivingPoseCache | None) -> None:
        self.store = store
        self.estimator = CountingEstimator(animator.estimator)
        self.pipeline = PoseFramesSpy(animator.pipeline)
        spied = Animator(estimator=self.estimator, pipeline=self.pipeline)  # type: ignore[arg-type]
        self.deps = RunDeps(
            store=store, storage=create_storage(settings), animator=lambda: spied, settings=settings,
            worker="test-worker@host", pose_cache=cache,
        )  # fmt: skip

    def run(self, job_id: str) -> tuple[Job, int]:
        """The finished job and how many images DWPose was given for it."""
        before = self.estimator.images
        run_job(job_id, self.deps)
        job = self.store.get(job_id)
        assert job.status is JobStatus.succeeded, job.error
        return job, self.estimator.images - before


def test_second_job_on_the_same_driving_video_is_a_hit_with_the_cold_pose_frames(
    settings: Settings, store: JobStore, animator: Animator, cache_store: PoseCacheStore, identity: str,
    two_people_url: str,
) -> None:  # fmt: skip
    worker = Worker(settings, store, animator, DrivingPoseCache(cache_store, estimator_identity=identity))
    first, first_detected = worker.run(create_job(store, two_people_url))
    second_id = create_job(store, two_people_url, image="other-person.png")
    second, second_detected = worker.run(second_id)

    assert first.cache is not None and first.cache.driving_pose == "miss"
    assert second.cache is not None and second.cache.driving_pose == "hit"
    assert (first_detected, second_detected) == (1 + NUM_SAMPLES, 1)  # the hit detects its reference image only
    assert JobView(**public_fields(second, queue_position=None, output=None)).cache == second.cache
    # A cold run of the second job (no cache at all) draws the very same pose frames.
    cold_worker = Worker(settings, store, animator, None)
    cold, cold_detected = cold_worker.run(create_job(store, two_people_url, image="other-person.png"))
    assert cold.cache is None and cold_detected == 1 + NUM_SAMPLES
    hit_frames, cold_frames = worker.pipeline.pose_frames[1], cold_worker.pipeline.pose_frames[0]
    assert hit_frames.shape == (NUM_SAMPLES + 1, 192, 128, 3)
    assert np.array_equal(hit_frames, cold_frames)
    assert not np.array_equal(worker.pipeline.pose_frames[0][0], hit_frames[0])  # another reference, another pose
    assert second.output is not None and cold.output is not None
    assert second.output.sha256 == cold.output.sha256
    print(f"pose stage: cold {cold.timings['pose']:.3f} s, miss {first.timings['pose']:.3f} s, "
          f"hit {second.timings['pose']:.3f} s")  # fmt: skip


def test_another_key_misses_unless_the_cache_is_shared(
    settings: Settings, store: JobStore, animator: Animator, cache_store: PoseCacheStore, identity: str,
    two_people_url: str,
) -> None:  # fmt: skip
    per_key = Worker(settings, store, animator, DrivingPoseCache(cache_store, estimator_identity=identity))
    shared = Worker(settings, store, animator, DrivingPoseCache(cache_store, estimator_identity=identity, shared=True))
    lookups: dict[str, list[str]] = {"per key": [], "shared": []}  # what the worker's metrics are told
    assert per_key.deps.pose_cache is not None and shared.deps.pose_cache is not None
    per_key.deps.pose_cache.on_lookup = lookups["per key"].append
    shared.deps.pose_cache.on_lookup = lookups["shared"].append

    alice, _ = shared.run(create_job(store, two_people_url, owner="alice"))
    bob_shared, bob_shared_detected = shared.run(create_job(store, two_people_url, owner="bob"))
    bob_own, bob_own_detected = per_key.run(create_job(store, two_people_url, owner="bob"))

    uses = [job.cache.driving_pose if job.cache else None for job in (alice, bob_shared, bob_own)]
    assert uses == ["miss", "hit", "miss"]  # bob's own entries know nothing of alice's video
    assert lookups == {"per key": ["miss"], "shared": ["miss", "hit"]}
    assert (bob_shared_detected, bob_own_detected) == (1, 1 + NUM_SAMPLES)
    scopes = sorted(name.split("/")[0] for name in cache_store.names())
    assert scopes[-1] == "shared" and scopes[0].startswith("key-") and len(scopes) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_entry_is_a_miss_and_the_job_succeeds(
    settings: Settings, store: JobStore, animator: Animator, cache_store: PoseCacheStore, identity: str,
    two_people_url: str, damage: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    worker = Worker(settings, store, animator, DrivingPoseCache(cache_store, estimator_identity=identity))
    worker.run(create_job(store, two_people_url))
    [name] = cache_store.names()
    storage = worker.deps.storage
    assert isinstance(storage, LocalStorage)
    entry = storage.root / f"pose-cache/{name}.npz"
    data = entry.read_bytes()
    entry.write_bytes(b"not an npz" * 100 if damage == "garbage" else data[: len(data) // 2])
    lookups: list[str] = []
    assert worker.deps.pose_cache is not None
    worker.deps.pose_cache.on_lookup = lookups.append

    with caplog.at_level(logging.WARNING, logger="core.execution.poses"):
        job, detected = worker.run(create_job(store, two_people_url))

    assert job.cache is not None and job.cache.driving_pose == "miss"
    assert lookups == ["miss"]  # counted as a miss, as the job records it
    assert detected == 1 + NUM_SAMPLES
    assert any(f"pose cache entry {name} is unusable" in message for message in caplog.messages)
    assert len(unpack_poses(entry.read_bytes())) == NUM_SAMPLES  # detected again, and stored again whole


def test_redis_down_while_caching_does_not_fail_the_job(
    settings: Settings, store: JobStore, animator: Animator, identity: str, two_people_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    unreachable = KeyedRedis.from_url("redis://127.0.0.1:1/0", socket_timeout_s=0.5)  # nothing listens on port 1
    down = PoseCacheStore(unreachable, create_storage(settings), max_bytes=10**8, scratch=settings.data_dir)
    worker = Worker(settings, store, animator, DrivingPoseCache(down, estimator_identity=identity))
    with caplog.at_level(logging.WARNING, logger="core.execution.poses"):
        job, detected = worker.run(create_job(store, two_people_url))
    assert job.cache is not None and job.cache.driving_pose == "miss"
    assert detected == 1 + NUM_SAMPLES
    assert any("pose cache not read" in message for message in caplog.messages)
    assert any("not stored" in message for message in caplog.messages)


def test_another_sample_stride_is_a_miss(
    settings: Settings, store: JobStore, animator: Animator, cache_store: PoseCacheStore, identity: str,
    two_people_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """The pose stage alone (the part of run_job the stride changes), on real decoded frames. Four frames: stride
    2 samples frames 0 and 2, stride 3 frames 0 and 3, as many samples of the same size, so only the frame
    sampling itself tells the two entries apart."""
    cache = DrivingPoseCache(cache_store, estimator_identity=identity)
    estimator = CountingEstimator(animator.estimator)
    write_inputs(tmp_path, num_frames=4)
    image = read_image(tmp_path / "person.png")
    uses = []
    for stride in (2, 3, 2):
        params = TINY_PARAMS.model_copy(update={"sample_stride": stride})
        job = store.get(create_job(store, two_people_url, params=params))
        video = read_video_frames(tmp_path / "drive.mp4", sample_stride=stride)
        assert video.frames.shape[0] == 2
        before = estimator.images
        counted = Animator(estimator=estimator, pipeline=animator.pipeline)  # type: ignore[arg-type]
        poses = prepare_job_poses(job, image, video, tmp_path / "drive.mp4", counted, cache)
        assert poses.cache is not None
        uses.append((poses.cache.driving_pose, estimator.images - before))
    assert uses == [("miss", 1 + 2), ("miss", 1 + 2), ("hit", 1)]


def test_a_job_prepared_ahead_by_the_prefetch_uses_and_records_the_cache(
    settings: Settings, store: JobStore, animator: Animator, cache_store: PoseCacheStore, identity: str,
    two_people_url: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    cache = DrivingPoseCache(cache_store, estimator_identity=identity)
    worker = Worker(settings, store, animator, cache)
    spied = worker.deps.animator()
    worker.deps.prefetch = Prefetcher(store, worker.deps.storage, settings, spied, ["gpu"], pose_cache=cache)
    first_id = create_job(store, two_people_url)
    second_id = create_job(store, two_people_url, image="other-person.png")
    with caplog.at_level(logging.INFO, logger="worker.prefetch"):
        first, _ = worker.run(first_id)  # its first denoising step starts preparing the second, poses stored by then
        second, _ = worker.run(second_id)
    assert f"job {second_id}: inputs and poses were prepared ahead" in caplog.messages
    assert first.cache is not None and first.cache.driving_pose == "miss"
    assert second.cache is not None and second.cache.driving_pose == "hit"
    assert worker.estimator.images == (1 + NUM_SAMPLES) + 1
