"""MimicMotion 1.1 behind the backend seam: its layout, loading and sampling; ``core.animate.Animator`` is its
loaded model (poses, conditioning, resumable denoising with previews, decoding)."""

from pathlib import Path

from core.animate import Animator, load_animator
from core.backends.base import FrameSampling, LoadOptions
from core.contract.params import MIMICMOTION, JobParams
from core.models.files import ModelFiles, resolve_model_files
from core.video.frames import target_size


class MimicMotionBackend:
    """MimicMotion 1.1: SVD-xt-1.1 + PoseNet, the model directory of DESIGN.md ("Model directory")."""

    name = MIMICMOTION

    def resolve_files(self, model_dir: Path) -> ModelFiles:
        return resolve_model_files(model_dir)

    def load(self, files: ModelFiles, options: LoadOptions) -> Animator:
        return load_animator(files, device=options.device, dtype=options.dtype, options=options.performance)

    def frame_sampling(self, params: JobParams) -> FrameSampling:
        return FrameSampling(sample_stride=params.sample_stride)

    def output_size(self, image_hw: tuple[int, int], params: JobParams) -> tuple[int, int]:
        return target_size(image_hw[0], image_hw[1], params.resolution)

    def make_tiny_model(self, directory: Path, *, seed: int = 0) -> Path:
        from core.models.tiny.directory import make_tiny_model  # builds ONNX graphs: only when asked

        make_tiny_model(directory, seed=seed)
        return directory
