"""The result checkpoint: a job's encoded files, kept in storage before their upload.

A worker lost while uploading (or in the background finisher's window, after the task's ack and before the
final write) used to cost its next attempt the decode and the encode, its denoising too before the latents
were checkpointed after the last step. The next attempt of the same job (same fingerprint as the denoising
checkpoints, core/execution/checkpoints.py) now fetches its inputs, checks the fingerprint and uploads these
files under its own attempt's prefix: no pose, conditioning, denoising, decoding or encoding again.

One object, ``jobs/{id}/checkpoint/result.tar``: a manifest (fingerprint, the params as run, the frames' size,
each file's name, content type and sha256) and the files. One put is atomic on both storages, so a partial
checkpoint is never read; one whose fingerprint differs, or that is truncated, corrupt or unreadable, is ignored
with a warning (the job runs its stages again). Writing it is a saving only: a failure is logged, never raised.
"""

import json
import logging
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.contract.params import JobParams
from core.contract.records import JobOutput
from core.errors import StorageError
from core.execution.checkpoints import CheckpointStats, checkpoint_prefix
from core.execution.results import GeneratedFrames, output_record
from core.execution.upload import ResultFile
from core.storage import MissingObjectError, Storage, StoredObject, file_sha256

logger = logging.getLogger(__name__)

# Part of the manifest: bump it when the archive's layout changes meaning.
RESULT_FORMAT = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024
# The files a result has, by their name in the archive and under an attempt's prefix, in upload order.
RESULT_FILES = ("pose.mp4", "output.mp4")


def result_checkpoint_key(job_id: str) -> str:
    return f"{checkpoint_prefix(job_id)}result.tar"


@dataclass(frozen=True)
class KeptResult:
    """An earlier attempt's encoded result of this very job, read back and checked, ready to upload."""

    files: dict[str, tuple[Path, str]]  # name in RESULT_FILES -> (local file, content type)
    params: JobParams  # as run, with the seed actually used
    num_frames: int
    height: int  # of the decoded frames (the stored video drops an odd last row or column)
    width: int

    def to_upload(self, prefix: str) -> list[ResultFile]:
        """The files as this attempt uploads them, under its own ``prefix``."""
        return [ResultFile(f"{prefix}{name}", *self.files[name]) for name in RESULT_FILES]

    def output(self, pose: StoredObject, video: StoredObject) -> JobOutput:
        """The output record once this attempt has stored the files."""
        return output_record(self.num_frames, self.height, self.width, self.params.fps, pose, video)


class ResultCheckpoint:
    """One job's result checkpoint: ``save`` before the upload, ``load`` on a later attempt.

    ``delete_checkpoints`` removes it with the denoising checkpoint (the same folder)."""

    def __init__(self, storage: Storage, job_id: str, tmp: Path, stats: CheckpointStats) -> None:
        self.storage, self.job_id, self.tmp, self.stats = storage, job_id, tmp, stats
        self.key = result_checkpoint_key(job_id)

    def save(self, fingerprint: str, generated: GeneratedFrames, files: dict[str, ResultFile]) -> bool:
        """Store ``files`` (one per name in RESULT_FILES) with ``fingerprint``; False when it was not stored."""
        path, manifest_path = self.tmp / "result-checkpoint-write.tar", self.tmp / "result-checkpoint-manifest.json"
        started = time.perf_counter()
        num_frames, height, width = generated.frames.shape[:3]
        try:
            manifest = {
                "format": RESULT_FORMAT, "fingerprint": fingerprint, "params": generated.params.model_dump(mode="json"),
                "num_frames": num_frames, "height": height, "width": width,
                "files": {name: {"content_type": files[name].content_type, "sha256": file_sha256(files[name].path)}
                          for name in RESULT_FILES},
            }  # fmt: skip
            manifest_path.write_text(json.dumps(manifest, sort_keys=True))
            with tarfile.open(path, "w") as archive:  # uncompressed: the videos are compressed already
                archive.add(manifest_path, arcname=MANIFEST)
                for name in RESULT_FILES:
                    archive.add(files[name].path, arcname=name)
            stored = self.storage.put_file(self.key, path, "application/x-tar")  # atomic: all or nothing
        except Exception as exc:  # storage down, disk full: the job goes on to its upload without it
            self.stats.failed += 1
            logger.warning("job %s: result checkpoint not stored: %s", self.job_id, exc)
            return False
        finally:
            path.unlink(missing_ok=True)
            manifest_path.unlink(missing_ok=True)
        self.stats.written += 1
        self.stats.bytes_written += stored.size_bytes
        self.stats.write_seconds += time.perf_counter() - started
        logger.info("job %s: result checkpoint stored (%d bytes)", self.job_id, stored.size_bytes)
        return True

    def fetch(self) -> Path | None:
        """Download the checkpoint, if there is one (no fingerprint is needed yet: most jobs have none, and
        the fingerprint needs the fetched inputs); None when there is none or it cannot be read."""
        path = self.tmp / "result-checkpoint-read.tar"
        try:
            self.storage.get_file(self.key, path)
        except MissingObjectError:
            return None
        except StorageError as exc:
            logger.warning("job %s: result checkpoint not read (%s); running the job's stages", self.job_id, exc)
            return None
        return path

    def load(self, archive: Path, fingerprint: str) -> KeptResult | None:
        """The checked result in ``archive`` (from ``fetch``) if it is of this very job, else None."""
        try:
            kept = self._unpack(archive, fingerprint)
        except Exception as exc:  # truncated, corrupt, not a checkpoint: tarfile and json raise many kinds
            logger.warning("job %s: result checkpoint unusable (%s); running the job's stages", self.job_id, exc)
            return None
        finally:
            archive.unlink(missing_ok=True)
        if kept is None:
            logger.warning("job %s: result checkpoint of other params, models or inputs; running the job's stages",
                           self.job_id)  # fmt: skip
        return kept

    def _unpack(self, archive: Path, fingerprint: str) -> KeptResult | None:
        with tarfile.open(archive, "r:") as tar:
            manifest: dict[str, Any] = json.loads(_member(tar, MANIFEST, MAX_MANIFEST_BYTES))
            if manifest["format"] != RESULT_FORMAT or manifest["fingerprint"] != fingerprint:
                return None
            files: dict[str, tuple[Path, str]] = {}
            for name in RESULT_FILES:  # read by exact name, never extracted by the archive's own paths
                path = self.tmp / f"kept-{name}"
                path.write_bytes(_member(tar, name))
                entry = manifest["files"][name]
                if file_sha256(path) != entry["sha256"]:
                    raise ValueError(f"{name} does not match its sha256")
                files[name] = (path, str(entry["content_type"]))
        return KeptResult(
            files=files, params=JobParams.model_validate(manifest["params"]), num_frames=int(manifest["num_frames"]),
            height=int(manifest["height"]), width=int(manifest["width"]),
        )  # fmt: skip


def _member(tar: tarfile.TarFile, name: str, max_bytes: int | None = None) -> bytes:
    info = tar.getmember(name)  # KeyError when missing
    if not info.isfile() or (max_bytes is not None and info.size > max_bytes):
        raise ValueError(f"{name} is not a file of at most {max_bytes} bytes")
    extracted = tar.extractfile(info)
    assert extracted is not None  # a regular file always has contents
    data = extracted.read()
    if len(data) != info.size:
        raise ValueError(f"{name} is truncated")
    return data
