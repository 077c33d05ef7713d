"""Wan2.2-Animate behind the backend seam (core.backends.base): the job run, the worker and the CLI call these.

One call of diffusers' pipeline does a segment's conditioning, denoising and decoding in turn, so a job's
GPU time shows as one ``denoising`` stage; its steps count over all segments. No checkpoints (UniPC is a
multistep solver: the latents and the step are not its whole state, so a resume would not give the same
frames) and no previews (the callback sees noisy latents, not an estimate).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.backends.base import FrameSampling, GenerationHooks, LoadOptions
from core.backends.wan_animate.files import WanModelFiles, resolve_wan_files
from core.backends.wan_animate.inputs import WanInputs, prepare_wan_inputs
from core.backends.wan_animate.pipeline import WanAnimator, generate_wan, load_wan_animator
from core.backends.wan_animate.sizes import area_size
from core.backends.wan_animate.tiny import make_tiny_wan_model
from core.contract.params import WAN_ANIMATE, WAN_RESOLUTION_AREAS, WanAnimateParams
from core.contract.stages import Stage
from core.errors import ConfigurationError
from core.models.files import TINY_MARKER_FILE
from core.models.loading import resolve_device, resolve_dtype
from core.pose.extract import PoseEstimator
from core.pose.records import Pose


@dataclass
class WanAnimateModel:
    """The loaded Wan2.2-Animate of one process (``LoadedModel``)."""

    animator: WanAnimator
    areas: dict[str, tuple[int, int]]  # (W, H) per resolution: the published ones, or a tiny model's own
    name: str = WAN_ANIMATE
    supports_checkpoints: bool = False

    @property
    def estimator(self) -> PoseEstimator:
        return self.animator.estimator

    @property
    def dtype(self) -> torch.dtype:
        return self.animator.pipeline.transformer.dtype

    @property
    def device(self) -> torch.device:
        return self.animator.device

    def synchronize(self) -> None:
        if self.animator.device.type == "cuda":
            torch.cuda.synchronize(self.animator.device)

    def prepare(
        self,
        image: np.ndarray,
        driving_frames: np.ndarray,
        params: WanAnimateParams,
        *,
        driving_poses: list[Pose] | None = None,
    ) -> WanInputs:
        return prepare_wan_inputs(
            image, driving_frames, params, self.estimator, driving_poses=driving_poses,
            area=self.areas[params.resolution],
        )  # fmt: skip

    def generate(self, prepared: WanInputs, params: WanAnimateParams, hooks: GenerationHooks) -> np.ndarray:
        hooks.start_stage(Stage.denoising)
        with hooks.timer.stage(Stage.denoising, synchronize=self.synchronize):
            return generate_wan(self.animator, prepared, params, on_step=hooks.on_step)


class WanAnimateBackend:
    """Wan2.2-Animate-14B: the published ``Wan2.2-Animate-14B-Diffusers`` folder plus DWPose/."""

    name = WAN_ANIMATE

    def resolve_files(self, model_dir: Path) -> WanModelFiles:
        return resolve_wan_files(model_dir)

    def load(self, files: WanModelFiles, options: LoadOptions) -> WanAnimateModel:
        try:
            device = resolve_device(options.device)
            dtype = resolve_dtype(options.dtype, device)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        areas = _tiny_areas(files) if files.is_tiny else dict(WAN_RESOLUTION_AREAS)
        return WanAnimateModel(load_wan_animator(files, device=device, dtype=dtype), areas)

    def frame_sampling(self, params: WanAnimateParams) -> FrameSampling:
        return FrameSampling(target_fps=float(params.fps))

    def output_size(self, image_hw: tuple[int, int], params: WanAnimateParams) -> tuple[int, int]:
        area_w, area_h = WAN_RESOLUTION_AREAS[params.resolution]  # the largest: a tiny model's are smaller
        return area_size(image_hw[0], image_hw[1], area_w * area_h)

    def make_tiny_model(self, directory: Path, *, seed: int = 0) -> Path:
        return make_tiny_wan_model(directory, seed=seed)


def _tiny_areas(files: WanModelFiles) -> dict[str, tuple[int, int]]:
    marker: dict[str, Any] = json.loads((files.root / TINY_MARKER_FILE).read_text())
    areas = {**WAN_RESOLUTION_AREAS, **{name: tuple(size) for name, size in marker.get("areas", {}).items()}}
    return {name: (int(size[0]), int(size[1])) for name, size in areas.items()}
