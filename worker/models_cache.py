"""What a worker process loads once at start and keeps warm: models, job store, storage.

``load(settings, name)`` is called explicitly by the worker entry point before the Celery worker
starts, never at import time; tasks then read the loaded state through ``worker_deps()``.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from core.animate import Animator, warm_up
from core.backends.base import LoadedModel, LoadOptions, ModelDirectory
from core.backends.registry import backend_for
from core.contract.params import JobParams
from core.errors import ModelFilesError
from core.execution.checkpoints import CheckpointStats, model_files_sha256
from core.execution.poses import DrivingPoseCache
from core.execution.run import RunDeps
from core.jobs.store import JobStore
from core.pipeline.performance import PerformanceOptions
from core.settings import Settings
from core.storage import Storage, create_storage
from worker.finisher import BackgroundFinisher
from worker.prefetch import Prefetcher
from worker.shutdown import GracefulStop

logger = logging.getLogger(__name__)


@dataclass
class Loaded:
    settings: Settings
    name: str
    files: ModelDirectory
    animator: LoadedModel  # the one model this process serves (settings.worker_model)
    store: JobStore
    storage: Storage
    stop: GracefulStop
    prefetch: Prefetcher | None  # the next job's inputs, prepared while this one denoises
    finisher: BackgroundFinisher | None  # the last job's encode and upload, while the next one runs
    pose_cache: DrivingPoseCache | None = None  # the driving videos' poses, for later jobs on the same video
    # Set by the worker entry point once its metrics exist: counts each job's outcome.
    on_job_end: Callable[[str, float], None] = lambda job_id, seconds: None
    on_checkpoints: Callable[[CheckpointStats], None] = lambda stats: None


_loaded: Loaded | None = None


def load(settings: Settings, name: str) -> Loaded:
    """Load the models onto this process's device and connect the store and storage (once)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    if settings.model_dir is None:
        raise ModelFilesError(
            "no model directory: set MIMICMOTION_MODEL_DIR (or run `mimicmotion up`, which uses a tiny model)"
        )
    backend = backend_for(settings.worker_model)
    files = backend.resolve_files(settings.model_dir)
    if files.is_tiny:
        logger.warning("worker %s: TINY MODEL (random weights) from %s: outputs are noise", name, files.root)
    options = LoadOptions(device=settings.device, dtype=settings.dtype, performance=performance_options(settings))
    animator = backend.load(files, options)
    if settings.compile_unet and isinstance(animator, Animator):
        logger.info("worker %s: compiling the UNet (warm-up at the default job size)", name)
        logger.info("worker %s: warm-up took %.1f s", name, warm_up(animator, JobParams()))
    if settings.checkpoint_interval_s > 0:  # hashed once here, so the first job does not wait for it
        model_files_sha256(settings.worker_model, settings.model_dir)
    store = JobStore.from_settings(settings)
    storage = create_storage(settings)
    pose_cache = DrivingPoseCache.for_worker(settings, store.db, storage, files, animator.estimator)
    prefetch = (
        Prefetcher(store, storage, settings, animator, settings.worker_queues, pose_cache=pose_cache)
        if settings.prefetch
        else None
    )
    _loaded = Loaded(
        settings, name, files, animator, store, storage, GracefulStop(settings.shutdown_grace_s),
        prefetch, BackgroundFinisher() if settings.finish_in_background else None, pose_cache=pose_cache,
    )  # fmt: skip
    return _loaded


def performance_options(settings: Settings) -> PerformanceOptions:
    return PerformanceOptions(
        tf32=settings.tf32, channels_last=settings.channels_last, compile_unet=settings.compile_unet,
        cfg_mode=settings.cfg_mode, vae_device=settings.vae_device,
        tile_devices=tuple(settings.tile_devices),
    )  # fmt: skip


def get_animator() -> LoadedModel:
    return _require().animator


def worker_deps() -> RunDeps:
    """The dependencies run_job needs, from what ``load`` put in place."""
    loaded = _require()
    return RunDeps(
        store=loaded.store, storage=loaded.storage, animator=get_animator, settings=loaded.settings,
        worker=loaded.name, must_stop=loaded.stop.expired,
        prefetch=loaded.prefetch, finisher=loaded.finisher, on_job_end=loaded.on_job_end,
        pose_cache=loaded.pose_cache,
        on_checkpoints=loaded.on_checkpoints,
    )  # fmt: skip


def _require() -> Loaded:
    if _loaded is None:
        raise RuntimeError("worker state not loaded: the worker entry point calls models_cache.load() at start")
    return _loaded
