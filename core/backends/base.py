"""What a model implements to run behind the service: the seam between the job run and each model's code.

A backend knows its model directory's layout, loads its weights once per process, prepares its conditioning
from the reference image and the sampled driving frames (DWPose is shared: every backend gets the driving
poses from the same estimator, so the pose cache serves them all), and generates the output frames, reporting
each step through the same callback, which may raise to cancel. Fetching, video I/O, storage, the job's
stages, previews, checkpoints and the service are the same for every model (core.execution).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from core.contract.stages import Stage, StageTimer
from core.pose.extract import PoseEstimator
from core.pose.records import Pose

OnStep = Callable[[int, int], None]  # (step done, total steps), may raise to stop the job
OnEstimate = Callable[[int, int, torch.Tensor], None]  # (step, total, denoised estimate latents): previews


class ModelDirectory(Protocol):
    """A checked model directory: what every backend's layout has (DWPose included)."""

    @property
    def root(self) -> Path: ...

    @property
    def detector(self) -> Path: ...

    @property
    def pose_model(self) -> Path: ...

    @property
    def is_tiny(self) -> bool: ...

    def loaded_files(self) -> list[Path]:
        """Every file the model loads, sorted: what a checkpoint's fingerprint hashes."""
        ...


class PreparedConditioning(Protocol):
    """A job's conditioning before the GPU stages: the pose stage's result (may be prepared ahead)."""

    @property
    def pose_video_frames(self) -> np.ndarray:
        """(N, H, W, 3) uint8: the drawn pose of each output frame, stored as the job's pose video."""
        ...

    @property
    def driving_poses(self) -> list[Pose]:
        """The driving frames' poses as detected (before any alignment): what the pose cache keeps."""
        ...

    @property
    def timings(self) -> dict[str, float]:
        """``{"pose": seconds}``."""
        ...


class DenoisingCheckpointer(Protocol):
    """A job's denoising checkpoints (core.execution.checkpoints): a backend that can resume uses it."""

    def load(self, shape: torch.Size, total_steps: int) -> tuple[int, torch.Tensor] | None: ...

    def on_latents(self, step: int, total_steps: int, latents: torch.Tensor) -> None: ...

    def stop(self) -> None: ...


@dataclass
class GenerationHooks:
    """What the job run lends a backend's generation: its timer, progress, previews and checkpoints."""

    timer: StageTimer  # each GPU stage timed as its Stage (conditioning, denoising, decoding)
    start_stage: Callable[[Stage], None]  # a stage begins: progress shows it
    on_step: OnStep
    on_estimate: OnEstimate | None = None  # only backends whose latents preview (MimicMotion's SD-family VAE)
    checkpoints: DenoisingCheckpointer | None = None  # only when the backend supports_checkpoints
    on_resume: Callable[[int, int], None] = lambda step, total_steps: None  # resumed from a checkpoint's step
    decode_chunk_size: int = 8  # frames per VAE decoder call, where the model decodes in chunks (a setting)


@dataclass(frozen=True)
class FrameSampling:
    """Which driving frames a model animates: every ``sample_stride``-th (frame_stride), or at ``target_fps``."""

    sample_stride: int = 1
    target_fps: float | None = None


@dataclass(frozen=True)
class LoadOptions:
    """How a worker or the CLI loads a model (from its settings)."""

    device: str = "auto"  # auto, cpu, cuda, cuda:N
    dtype: str = "auto"  # auto, float32, float16, bfloat16
    performance: Any = None  # the model's own speed options (MimicMotion: PerformanceOptions)


class LoadedModel(Protocol):
    """One process's loaded model: load once, prepare and generate for many jobs."""

    name: str
    supports_checkpoints: bool  # whether generate uses hooks.checkpoints (resumable denoising)

    @property
    def estimator(self) -> PoseEstimator: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def prepare(
        self, image: np.ndarray, driving_frames: np.ndarray, params: Any, *, driving_poses: list[Pose] | None = None
    ) -> PreparedConditioning:
        """The pose stage: the reference fitted to the output size, the poses detected (the driving ones
        taken from ``driving_poses`` when given) and drawn, whatever else the model conditions on.

        Raises:
            NoPersonError: no person in the reference image or the driving frames.
        """
        ...

    def generate(self, prepared: Any, params: Any, hooks: GenerationHooks) -> np.ndarray:
        """The GPU stages: (N, H, W, 3) uint8 frames, one per driving frame. ``params`` carry the seed."""
        ...

    def synchronize(self) -> None:
        """Wait for the device's queued work (a stage's time includes it)."""
        ...


class ModelBackend(Protocol):
    """A model the service can serve: its layout, loading, frame sampling and tiny test model."""

    name: str

    def resolve_files(self, model_dir: Path) -> ModelDirectory:
        """Check the directory's layout (cheap) and return its paths.

        Raises:
            ModelFilesError: naming the first missing or malformed file.
        """
        ...

    def load(self, files: Any, options: LoadOptions) -> LoadedModel: ...

    def frame_sampling(self, params: Any) -> FrameSampling: ...

    def output_size(self, image_hw: tuple[int, int], params: Any) -> tuple[int, int]:
        """(H, W) of the output for a reference image of ``image_hw``: the memory checks size by it."""
        ...

    def make_tiny_model(self, directory: Path, *, seed: int = 0) -> Path:
        """Write a tiny random model in this backend's layout (tests and `mimicmotion up` without weights)."""
        ...
