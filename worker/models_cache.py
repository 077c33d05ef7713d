"""What a worker process loads once at start and keeps warm: models, job store, storage.

``load(settings, name)`` is called explicitly by the worker entry point before the Celery worker
starts, never at import time; tasks then read the loaded state through ``worker_deps()``.
"""

import logging
from dataclasses import dataclass

from core.animate import Animator, load_animator
from core.errors import ModelFilesError
from core.jobs.run import RunDeps
from core.jobs.store import JobStore
from core.models.files import ModelFiles, resolve_model_files
from core.settings import Settings
from core.storage import Storage, create_storage

logger = logging.getLogger(__name__)


@dataclass
class Loaded:
    settings: Settings
    name: str
    files: ModelFiles
    animator: Animator
    store: JobStore
    storage: Storage


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
    files = resolve_model_files(settings.model_dir)
    if files.is_tiny:
        logger.warning("worker %s: TINY MODEL (random weights) from %s: outputs are noise", name, files.root)
    animator = load_animator(files, device=settings.device, dtype=settings.dtype)
    _loaded = Loaded(settings, name, files, animator, JobStore.from_url(settings.redis_url), create_storage(settings))
    return _loaded


def get_animator() -> Animator:
    return _require().animator


def worker_deps() -> RunDeps:
    """The dependencies run_job needs, from what ``load`` put in place."""
    loaded = _require()
    return RunDeps(
        store=loaded.store, storage=loaded.storage, animator=get_animator, settings=loaded.settings,
        worker=loaded.name, lease_s=loaded.settings.lease_s,
    )  # fmt: skip


def _require() -> Loaded:
    if _loaded is None:
        raise RuntimeError("worker state not loaded: the worker entry point calls models_cache.load() at start")
    return _loaded
