"""A job's generated frames, the files encoded from them and the output record those files make."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.contract.params import ModelParams
from core.contract.records import JobOutput, job_files_prefix
from core.execution.upload import ResultFile
from core.storage import StoredObject
from core.video.encode import write_mp4


@dataclass
class GeneratedFrames:
    """What the GPU stages hand to encoding and upload."""

    frames: np.ndarray  # (N, H, W, 3) uint8, one per sampled driving frame
    pose_frames: np.ndarray  # (N, H, W, 3) uint8, the drawn pose of each output frame
    params: ModelParams  # as run, with the seed actually used


def result_prefix(job_id: str, attempt: int) -> str:
    """Where one claim of a job stores its files: ``jobs/{id}/attempt-{n}/``.

    Every claim has its own attempt number (the claim counts it under the lease), so a worker that
    lost the job mid-upload and wakes up later writes, and on failure removes, only its own files,
    never those of the worker that took the job over.
    """
    return f"{job_files_prefix(job_id)}attempt-{attempt}/"


def encode_results(generated: GeneratedFrames, prefix: str, tmp: Path, *, with_pose: bool = True) -> list[ResultFile]:
    """H.264 of the result and (``with_pose``, unless stored early) of the pose frames aligned with it (the
    reference's own pose dropped), as the files to upload under ``prefix``, in upload order."""
    fps = generated.params.fps
    write_mp4(generated.frames, tmp / "output.mp4", fps)
    files = [ResultFile(f"{prefix}output.mp4", tmp / "output.mp4", "video/mp4")]
    if with_pose:
        write_mp4(generated.pose_frames, tmp / "pose.mp4", fps)
        files.insert(0, ResultFile(f"{prefix}pose.mp4", tmp / "pose.mp4", "video/mp4"))
    return files


def job_output(generated: GeneratedFrames, pose: StoredObject, video: StoredObject) -> JobOutput:
    """The output record of the stored files."""
    num_frames, height, width = generated.frames.shape[:3]
    return output_record(num_frames, height, width, generated.params.fps, pose, video)


def output_record(
    num_frames: int, height: int, width: int, fps: int, pose: StoredObject, video: StoredObject
) -> JobOutput:
    """The output record of stored files encoded from ``num_frames`` frames of ``height`` x ``width``."""
    # write_mp4 drops an odd last row or column (yuv420p), so the stored size is the even one.
    return JobOutput(
        video_key=video.key, pose_video_key=pose.key, width=width - width % 2, height=height - height % 2,
        num_frames=num_frames, fps=fps, duration_s=round(num_frames / fps, 3), size_bytes=video.size_bytes,
        sha256=video.sha256,
    )  # fmt: skip
