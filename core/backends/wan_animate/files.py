"""The Wan2.2-Animate model directory: the published ``Wan2.2-Animate-14B-Diffusers`` folder plus the DWPose
files in MimicMotion's layout, so both models load their pose estimator the same way.

Checks are cheap (existence, JSON parses, required keys), run before any heavy loading, and name the file.
"""

from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelFilesError
from core.models.files import (
    DETECTOR_FILE,
    POSE_MODEL_FILE,
    TINY_MARKER_FILE,
    check_weight_files,
    dwpose_files,
    model_root,
    read_json_file,
)

PIPELINE_CLASS = "WanAnimatePipeline"
# Component folder -> its config file and keys we rely on (wan-animate-reference §5).
_REQUIRED_JSON: dict[str, tuple[str, ...]] = {
    "model_index.json": ("_class_name",),
    "transformer/config.json": ("in_channels", "num_layers", "motion_encoder_size"),
    "vae/config.json": ("z_dim",),
    "text_encoder/config.json": ("d_model",),
    "image_encoder/config.json": ("hidden_size",),
    "image_processor/preprocessor_config.json": ("image_mean", "image_std"),
    "scheduler/scheduler_config.json": (),
}
_TOKENIZER_FILES = ("tokenizer_config.json",)
_WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin")
_WEIGHTED = ("transformer", "vae", "text_encoder", "image_encoder")
COMPONENT_FOLDERS = (*_WEIGHTED, "tokenizer", "image_processor", "scheduler")


@dataclass(frozen=True)
class WanModelFiles:
    """Resolved paths of a Wan-Animate model directory."""

    root: Path
    detector: Path
    pose_model: Path

    @property
    def is_tiny(self) -> bool:
        """Whether this is a tiny test directory (random weights)."""
        return (self.root / TINY_MARKER_FILE).is_file()

    def loaded_files(self) -> list[Path]:
        """Every file the worker loads, sorted: the pipeline's component folders whole, and DWPose's two."""
        components = [
            path for folder in COMPONENT_FOLDERS for path in (self.root / folder).rglob("*") if path.is_file()
        ]
        return sorted({self.root / "model_index.json", self.detector, self.pose_model, *components})


def resolve_wan_files(model_dir: Path | str) -> WanModelFiles:
    """Check the layout of ``model_dir`` and return its resolved paths.

    Raises:
        ModelFilesError: naming the first missing or malformed file and what was expected.
    """
    root = model_root(model_dir)
    for relative, keys in _REQUIRED_JSON.items():
        content = read_json_file(root / relative, keys, expected="the Wan2.2-Animate-14B-Diffusers file")
        if relative == "model_index.json" and content["_class_name"] != PIPELINE_CLASS:
            raise ModelFilesError(
                f"malformed {root / relative}: _class_name is {content['_class_name']!r}, expected {PIPELINE_CLASS!r}"
            )
    for name in _TOKENIZER_FILES:
        if not (root / "tokenizer" / name).is_file():
            raise ModelFilesError(f"missing {root / 'tokenizer' / name}: expected the umt5-xxl tokenizer")
    for component in _WEIGHTED:
        folder = root / component
        if not any(path.name.endswith(_WEIGHT_SUFFIXES) for path in folder.iterdir()):
            raise ModelFilesError(f"missing weights in {folder}: expected *.safetensors (or a sharded index)")
    check_weight_files(*dwpose_files(root))
    return WanModelFiles(root=root, detector=root / DETECTOR_FILE, pose_model=root / POSE_MODEL_FILE)
