"""What a running job shows before it ends: live previews of the denoised estimate, and the pose video.

Both are stored under the attempt's own prefix and named in the job record (``preview_key``,
``pose_video_key``), so the API mints their URLs like the output's. The denoising loop pays only for the
latent-to-RGB map of a few frames (core.pipeline.preview); encoding and upload run on a helper thread,
and a preview still uploading when the next is due makes that one skipped, never a wait. Failures are
logged and change nothing else: the job's result does not depend on them.
"""

import logging
import threading
from pathlib import Path

import numpy as np
import torch

from core.errors import StorageError
from core.jobs.store import JobStore
from core.pipeline.preview import latents_to_rgb
from core.storage import Storage, StoredObject
from core.video.encode import encode_animated_webp, write_mp4

logger = logging.getLogger(__name__)


def preview_steps(total_steps: int, interval_fraction: float) -> frozenset[int]:
    """The steps after which a preview is made: every ``interval_fraction`` of the steps, never the last
    (decoding follows at once) and none when the fraction is 0."""
    if interval_fraction <= 0 or total_steps < 2:
        return frozenset()
    every = max(1, round(total_steps * interval_fraction))
    return frozenset(range(every, total_steps, every))


class LivePreviews:
    """``on_estimate`` for the denoising loop: previews of the estimate at ``preview_steps``."""

    def __init__(
        self, storage: Storage, store: JobStore, job_id: str, worker: str, prefix: str, tmp: Path,
        *, interval_fraction: float,
    ) -> None:  # fmt: skip
        self.storage, self.store, self.job_id, self.worker = storage, store, job_id, worker
        self.prefix, self.tmp, self.interval_fraction = prefix, tmp, interval_fraction
        self._steps: frozenset[int] | None = None
        self._thread: threading.Thread | None = None
        # The newest two previews are kept: a client that reads the newest URL from an event a moment before
        # the next preview lands can still load it. Older ones are deleted as new ones come.
        self._kept: list[str] = []
        self._stopped = False
        self.published: list[int] = []  # steps whose preview was stored

    def on_estimate(self, step: int, total_steps: int, estimate: torch.Tensor) -> None:
        if self._steps is None:
            self._steps = preview_steps(total_steps, self.interval_fraction)
        if self._stopped or step not in self._steps or (self._thread is not None and self._thread.is_alive()):
            return
        frames = latents_to_rgb(estimate)  # the only work on the loop's thread: a few frames, to the CPU
        self._thread = threading.Thread(target=self._publish, args=(step, frames), name="preview", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No more previews (denoising is over); one still being stored finishes on its thread."""
        self._stopped = True

    def discard(self) -> None:
        """Wait for a preview being stored, then delete the ones kept: previews live while the job runs; once it
        ends only its results are under its prefix. Called before the final write."""
        self._stopped = True
        if self._thread is not None:
            self._thread.join()
        for key in self._kept:
            try:
                self.storage.delete(key)
            except StorageError as exc:
                logger.warning("job %s: preview %s not deleted: %s", self.job_id, key, exc)
        self._kept = []

    def _publish(self, step: int, frames: np.ndarray) -> None:
        key = f"{self.prefix}preview-{step:04d}.webp"
        path = self.tmp / f"preview-{step:04d}.webp"
        try:
            path.write_bytes(encode_animated_webp(frames))
            self.storage.put_file(key, path, "image/webp")
            if self.store.update_running(self.job_id, self.worker, preview_key=key) is None:
                self.storage.delete(key)  # the job is no longer ours (canceled, taken over): leave nothing
                return
            self._kept.append(key)
            while len(self._kept) > 2:
                self.storage.delete(self._kept.pop(0))
            self.published.append(step)
        except (StorageError, OSError) as exc:
            logger.warning("job %s: preview at step %d not stored: %s", self.job_id, step, exc)
        except Exception:  # a preview must never take the job down with it
            logger.warning("job %s: preview at step %d failed", self.job_id, step, exc_info=True)
        finally:
            path.unlink(missing_ok=True)


class EarlyPoseVideo:
    """The pose video encoded and stored on a helper thread as soon as the poses exist; ``result`` gives it
    to the upload stage (which then stores only the result), or None when it could not be stored."""

    def __init__(self, storage: Storage, store: JobStore, job_id: str, worker: str, key: str, path: Path) -> None:
        self.storage, self.store, self.job_id, self.worker = storage, store, job_id, worker
        self.key, self.path = key, path
        self._stored: StoredObject | None = None
        self._thread: threading.Thread | None = None

    def start(self, pose_frames: np.ndarray, fps: int) -> None:
        """Encode ``pose_frames`` (the reference's own pose already dropped) at ``fps`` and store them."""
        self._thread = threading.Thread(target=self._store, args=(pose_frames, fps), name="pose-video", daemon=True)
        self._thread.start()

    def result(self) -> StoredObject | None:
        if self._thread is not None:
            self._thread.join()
        return self._stored

    def discard(self) -> None:
        """Delete the early pose video of a job that ends without a result (canceled, failed, handed back)."""
        if (stored := self.result()) is None:
            return
        try:
            self.storage.delete(stored.key)
        except StorageError as exc:
            logger.warning("job %s: pose video %s not deleted: %s", self.job_id, stored.key, exc)
        self._stored = None

    def _store(self, pose_frames: np.ndarray, fps: int) -> None:
        try:
            write_mp4(pose_frames, self.path, fps)
            stored = self.storage.put_file(self.key, self.path, "video/mp4")
            self._stored = stored
            self.store.update_running(self.job_id, self.worker, pose_video_key=self.key)
        except (StorageError, OSError) as exc:
            logger.warning("job %s: the pose video was not stored early: %s", self.job_id, exc)
        except Exception:
            logger.warning("job %s: the pose video was not stored early", self.job_id, exc_info=True)
