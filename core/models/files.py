"""The model-directory layout: the only module that knows where each file lives.

Same files a user downloads for the original release (DESIGN.md, "Model directory"). Checks are
cheap (existence, JSON parses, required keys), so callers run them before any heavy loading and
get one error naming the file instead of a traceback from inside a library.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelFilesError

SVD_DIR = "svd"
CHECKPOINT_FILE = "MimicMotion_1-1.pth"
DETECTOR_FILE = "DWPose/yolox_l.onnx"
POSE_MODEL_FILE = "DWPose/dw-ll_ucoco_384.onnx"
TINY_MARKER_FILE = "tiny-model.json"  # written by make-tiny-model: random weights, not a real model

# diffusers accepts either the plain or the fp16 variant of each weight file.
_WEIGHT_NAMES = {
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"),
    "image_encoder": ("model.safetensors", "model.fp16.safetensors"),
}
_REQUIRED_JSON = {
    "model_index.json": (),
    "unet/config.json": ("block_out_channels", "in_channels", "addition_time_embed_dim"),
    "vae/config.json": ("latent_channels", "block_out_channels"),
    "image_encoder/config.json": (),
    "feature_extractor/preprocessor_config.json": ("image_mean", "image_std"),
    "scheduler/scheduler_config.json": ("sigma_min", "sigma_max"),
}


@dataclass(frozen=True)
class ModelFiles:
    """Resolved paths of every file the service loads from a model directory."""

    root: Path
    svd_dir: Path
    checkpoint: Path
    detector: Path
    pose_model: Path
    vae_variant: str | None
    image_encoder_variant: str | None

    @property
    def is_tiny(self) -> bool:
        """Whether this is a ``make-tiny-model`` directory (random weights)."""
        return (self.root / TINY_MARKER_FILE).is_file()

    @property
    def unet_config(self) -> Path:
        return self.svd_dir / "unet" / "config.json"

    def loaded_files(self) -> list[Path]:
        """Every file the worker loads (what decides its numbers), sorted: for checkpoint fingerprints."""
        weights = [
            path for folder in ("vae", "image_encoder") for path in (self.svd_dir / folder).glob("*.safetensors")
        ]
        return sorted({self.checkpoint, self.detector, self.pose_model, *self.svd_dir.rglob("*.json"), *weights})


def resolve_model_files(model_dir: Path | str) -> ModelFiles:
    """Check the layout of ``model_dir`` and return its resolved paths.

    Raises:
        ModelFilesError: naming the first missing or malformed file and what was expected.
    """
    root = model_root(model_dir)
    svd_dir = root / SVD_DIR
    for relative, keys in _REQUIRED_JSON.items():
        read_json_file(svd_dir / relative, keys, expected="the SVD-xt-1.1 diffusers file")
    variants = {name: _weight_variant(svd_dir / name, files) for name, files in _WEIGHT_NAMES.items()}
    files = ModelFiles(
        root=root,
        svd_dir=svd_dir,
        checkpoint=root / CHECKPOINT_FILE,
        detector=root / DETECTOR_FILE,
        pose_model=root / POSE_MODEL_FILE,
        vae_variant=variants["vae"],
        image_encoder_variant=variants["image_encoder"],
    )
    check_weight_files(
        (files.checkpoint, "the MimicMotion checkpoint (torch state dict with unet.* and pose_net.* keys)"),
        *dwpose_files(root),
    )
    return files


def model_root(model_dir: Path | str) -> Path:
    """``model_dir`` as a path, checked to be a directory (every layout starts here)."""
    root = Path(model_dir).expanduser()
    if not root.is_dir():
        raise ModelFilesError(f"model directory {root} does not exist or is not a directory")
    return root


def dwpose_files(root: Path) -> tuple[tuple[Path, str], tuple[Path, str]]:
    """The two DWPose files every model's directory holds, with what each is (for ``check_weight_files``)."""
    return (
        (root / DETECTOR_FILE, "the YOLOX-L person detector (ONNX)"),
        (root / POSE_MODEL_FILE, "the DWPose whole-body model (ONNX)"),
    )


def check_weight_files(*expected: tuple[Path, str]) -> None:
    """Each (path, what it is) is a non-empty file.

    Raises:
        ModelFilesError: naming the first that is missing or empty, and what was expected there.
    """
    for path, what in expected:
        if not path.is_file() or path.stat().st_size == 0:
            raise ModelFilesError(f"missing {path}: expected {what}")


def read_json_file(path: Path, required_keys: tuple[str, ...], *, expected: str) -> dict[str, object]:
    """A model directory's JSON object with ``required_keys``; ``expected`` says what the file is, in errors.

    Raises:
        ModelFilesError: missing, not JSON, not an object, or a key missing, naming the file.
    """
    if not path.is_file():
        raise ModelFilesError(f"missing {path}: expected {expected} {path.name}")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFilesError(f"malformed {path}: not valid JSON ({exc})") from exc
    if not isinstance(content, dict):
        raise ModelFilesError(f"malformed {path}: expected a JSON object")
    missing = [key for key in required_keys if key not in content]
    if missing:
        raise ModelFilesError(f"malformed {path}: missing keys {', '.join(missing)}")
    return content


def _weight_variant(component_dir: Path, names: tuple[str, str]) -> str | None:
    plain, fp16 = names
    if (component_dir / plain).is_file():
        return None
    if (component_dir / fp16).is_file():
        return "fp16"
    raise ModelFilesError(f"missing {component_dir / plain}: expected weights ({plain} or {fp16})")
