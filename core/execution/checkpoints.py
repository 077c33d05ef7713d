"""Denoising checkpoints: a job's latents after step k, so that a later attempt resumes there.

The Euler scheduler draws no noise per step (s_churn 0), so the whole state of the loop after step k is
the latents and k: a few MB, and resuming from them gives the very same result (bit for bit on CPU in
float32). A checkpoint lives under the job's folder, not the attempt's (``jobs/{id}/checkpoint/``), so
the next attempt finds it and ``DELETE /jobs/{id}`` removes it with the rest.

A checkpoint carries a fingerprint of everything that determines the result (params with the seed, the
model files, the decoded inputs, the dtype, ``CHECKPOINT_FORMAT``); a checkpoint whose fingerprint differs,
or that cannot be read, is ignored with a warning and the job starts over. Writes run on a helper thread
from a CPU copy of the latents (the loop pays for the device-to-host copy only) and are atomic
(``Storage.put_file``); a failed write is logged and changes nothing else.
"""

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.backends.registry import backend_for
from core.contract.params import ModelParams
from core.contract.records import job_files_prefix
from core.errors import StorageError
from core.storage import MissingObjectError, Storage, file_sha256

logger = logging.getLogger(__name__)

# Part of every fingerprint: bump it when a change to the denoising loop, its schedule or this layout
# makes an older checkpoint mean something else.
CHECKPOINT_FORMAT = 1


def checkpoint_prefix(job_id: str) -> str:
    """Where a job's checkpoints live, across its attempts: ``jobs/{id}/checkpoint/``."""
    return f"{job_files_prefix(job_id)}checkpoint/"


def denoise_checkpoint_key(job_id: str) -> str:
    return f"{checkpoint_prefix(job_id)}denoise.pt"


@functools.cache
def model_files_sha256(model: str, model_dir: Path) -> dict[str, str]:
    """sha256 of every file ``model``'s worker loads from ``model_dir``, by relative path: once per process (seconds
    for MimicMotion's few GB; about a minute for Wan2.2-Animate's 82 GB, at worker start)."""
    files = backend_for(model).resolve_files(model_dir)
    started = time.perf_counter()
    hashes = {str(path.relative_to(files.root)): file_sha256(path) for path in files.loaded_files()}
    elapsed = time.perf_counter() - started
    logger.info("hashed %d model files for checkpoint fingerprints in %.1f s", len(hashes), elapsed)
    return hashes


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of a CPU tensor's dtype, shape and bytes."""
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.contiguous().view(torch.uint8).numpy().data)
    return digest.hexdigest()


def job_fingerprint(
    params: ModelParams, *, model_files: Mapping[str, str], inputs: Mapping[str, str], dtype: str,
    decode_chunk_size: int,
) -> str:  # fmt: skip
    """sha256 of a canonical JSON of everything that determines a job's result."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "params": params.model_dump(mode="json"),  # the seed included
        "model_files": dict(model_files),
        "inputs": dict(inputs),
        "dtype": dtype,
        "decode_chunk_size": decode_chunk_size,  # the decoder mixes frames within a chunk
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class CheckpointStats:
    """What one job's checkpoints cost and saved, for the worker's metrics."""

    written: int = 0
    bytes_written: int = 0
    write_seconds: float = 0.0  # on the helper thread, not the loop's
    failed: int = 0
    resumed_from_step: int | None = None


class DenoisingCheckpoints:
    """One job's denoising checkpoints: ``load`` the one a previous attempt left, ``on_latents`` in the loop
    writes one every ``interval_s``, ``save_now`` at a graceful stop, ``delete`` once the job has ended."""

    def __init__(
        self, storage: Storage, job_id: str, fingerprint: str, tmp: Path, *, interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        """``interval_s``: seconds of denoising between checkpoints (inf: only after the last step and at a stop)."""
        self.storage, self.job_id, self.fingerprint, self.tmp = storage, job_id, fingerprint, tmp
        self.interval_s, self.clock = interval_s, clock
        self.key = denoise_checkpoint_key(job_id)
        self.stats = CheckpointStats()
        self.written_steps: list[int] = []  # steps whose checkpoint was stored
        self._latest: tuple[int, torch.Tensor] | None = None  # the loop's newest latents (a reference)
        self._saved_step = 0
        self._due_at = clock() + interval_s
        self._thread: threading.Thread | None = None
        self._stopped = False

    def load(self, shape: torch.Size, total_steps: int) -> tuple[int, torch.Tensor] | None:
        """The step and CPU latents of a stored checkpoint of this very job, or None (none, or not usable).

        A checkpoint after the last step (the job was lost while decoding, encoding or uploading) leaves no
        step to run: the job goes straight to decoding."""
        path = self.tmp / "checkpoint-read.pt"
        try:
            self.storage.get_file(self.key, path)
        except MissingObjectError:
            return None
        except StorageError as exc:
            logger.warning("job %s: checkpoint not read (%s); starting from step 0", self.job_id, exc)
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            fingerprint, step, latents = saved["fingerprint"], saved["step"], saved["latents"]
            intact = saved["latents_sha256"] == tensor_sha256(latents)  # torch checks no checksum of its own
        except Exception as exc:  # truncated, corrupt, not a checkpoint: torch raises many kinds
            logger.warning("job %s: checkpoint unreadable (%s); starting from step 0", self.job_id, exc)
            return None
        finally:
            path.unlink(missing_ok=True)
        if not intact:
            logger.warning("job %s: checkpoint corrupt (its latents changed); starting from step 0", self.job_id)
            return None
        if fingerprint != self.fingerprint:
            logger.warning("job %s: checkpoint of other params, models or inputs; starting from step 0", self.job_id)
            return None
        if not (isinstance(step, int) and 1 <= step <= total_steps and latents.shape == shape):
            logger.warning("job %s: malformed checkpoint (step %r); starting from step 0", self.job_id, step)
            return None
        self._saved_step = step
        self.stats.resumed_from_step = step
        return step, latents

    def on_latents(self, step: int, total_steps: int, latents: torch.Tensor) -> None:
        """After each step: keep a reference; every ``interval_s``, and after the last step (so that a job lost
        while decoding, encoding or uploading denoises no more), hand a CPU copy to the writer thread."""
        self._latest = (step, latents)
        if self._stopped:
            return
        if step == total_steps:  # wait for a write in flight (at most one): the final latents must not be skipped
            self._join()
        elif self.clock() < self._due_at:
            return
        elif self._thread is not None and self._thread.is_alive():
            return  # the previous write is still going: try again after the next step, never wait
        self._due_at = self.clock() + self.interval_s
        self._start_write(step, _host_copy(latents))

    def save_now(self) -> None:
        """At a graceful stop: store the newest latents and wait for it (the job goes back to the queue)."""
        self._join()
        if self._latest is None or self._latest[0] <= self._saved_step:
            return
        step, latents = self._latest
        self._write(step, _host_copy(latents))

    def stop(self) -> None:
        """No more checkpoints (denoising is over or was stopped); a write in flight finishes on its thread."""
        self._stopped = True

    def close(self) -> None:
        """Wait for a write in flight (its file is in the job's scratch folder, which goes next)."""
        self._stopped = True
        self._join()

    def _start_write(self, step: int, latents: torch.Tensor) -> None:
        self._thread = threading.Thread(target=self._write, args=(step, latents), name="checkpoint", daemon=True)
        self._thread.start()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _write(self, step: int, latents: torch.Tensor) -> None:
        path = self.tmp / "checkpoint-write.pt"
        started = time.perf_counter()
        try:
            checkpoint = {
                "fingerprint": self.fingerprint, "step": step, "latents": latents,
                "latents_sha256": tensor_sha256(latents),
            }  # fmt: skip
            torch.save(checkpoint, path)
            stored = self.storage.put_file(self.key, path, "application/octet-stream")  # atomic: all or nothing
        except Exception as exc:  # storage down, disk full: the job goes on without this checkpoint
            self.stats.failed += 1
            logger.warning("job %s: checkpoint at step %d not stored: %s", self.job_id, step, exc)
            return
        finally:
            path.unlink(missing_ok=True)
        self._saved_step = step
        self.written_steps.append(step)
        self.stats.written += 1
        self.stats.bytes_written += stored.size_bytes
        self.stats.write_seconds += time.perf_counter() - started
        logger.info("job %s: checkpoint at step %d stored (%d bytes)", self.job_id, step, stored.size_bytes)


def delete_checkpoints(storage: Storage, job_id: str) -> None:
    """Delete a job's checkpoints; a storage error is logged (retention removes them later)."""
    try:
        storage.delete_prefix(checkpoint_prefix(job_id))
    except StorageError as exc:
        logger.warning("job %s: checkpoints not deleted: %s", job_id, exc)


def _host_copy(latents: torch.Tensor) -> torch.Tensor:
    # A copy the loop will not touch: the only cost on the loop's thread (a device-to-host copy on CUDA).
    return latents.detach().to("cpu", copy=True)
