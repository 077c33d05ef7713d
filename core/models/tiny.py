"""A tiny, seeded, byte-deterministic model directory with the release layout (DESIGN.md, "Model directory").

Every torch tensor is non-zero (diffusers' and PoseNet's zero inits are replaced), and the two ONNX
files are small hand-built graphs with the real files' signatures whose outputs follow the image:
the detector finds exactly one person on any textured image and none on a flat one, and the pose
model places a plausible whole-body template with scores spread across the 0.3 threshold.
"""

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import diffusers
import numpy as np
import onnx
import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from core.models.files import CHECKPOINT_FILE, DETECTOR_FILE, POSE_MODEL_FILE, SVD_DIR, TINY_MARKER_FILE
from core.models.pose_net import PoseNet

# environment.md §3: configs known to run the SVD pipeline on CPU in well under a second.
UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"],
    "block_out_channels": [32, 64],  # multiples of 32: GroupNorm(32) everywhere
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 24,  # must be 3 * addition_time_embed_dim
    "layers_per_block": 1,
    "cross_attention_dim": 32,  # must equal the CLIP projection_dim
    "transformer_layers_per_block": 1,
    "num_attention_heads": [2, 4],  # must divide block_out_channels
    "num_frames": 8,  # only the default; other frame counts run too
}
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "block_out_channels": [32, 32, 32, 32],  # 4 levels -> vae_scale_factor 8, as the real SVD VAE
    "layers_per_block": 1,
    "latent_channels": 4,
    "sample_size": 64,
    "scaling_factor": 0.18215,
    "force_upcast": True,
}
CLIP_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 224,  # the SVD pipeline always resizes to 224
    "patch_size": 14,
    "num_channels": 3,
}
# The stable-video-diffusion-img2vid-xt-1-1 files, legacy keys included (EulerDiscreteScheduler.from_config
# ignores set_alpha_to_one, skip_prk_steps, clip_sample and trained_betas).
SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.24.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}
FEATURE_EXTRACTOR_CONFIG: dict[str, Any] = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],  # OpenAI CLIP
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
MODEL_INDEX: dict[str, Any] = {
    "_class_name": "StableVideoDiffusionPipeline",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],  # not the Pil fallback name (env §3.9)
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
    "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}

# Unbounded: mypy does not see diffusers' models as nn.Module subclasses.
ModuleT = TypeVar("ModuleT")

_SAFETENSORS_METADATA = {"format": "pt"}
_REFILL_STD = 0.02  # std of the values that replace zero-initialised entries
_ONNX_OPSET = 17
_ONNX_IR_VERSION = 8  # the IR version that goes with opset 17

# Detector head (stride-32 grid only; the stride-8 and -16 anchors never score).
DETECTOR_SIZE = 640
DETECTOR_STRIDES = (8, 16, 32)
_PAD_VALUE = 114.0  # letterbox canvas colour: excluded from the texture measure
_TEXTURE_THRESHOLD = 2.0  # grey-level std of the most textured 32x32 cell at which objectness is 0.5
_TEXTURE_GAIN = 3.0
_BUMP_SIGMA_CELLS = 0.7  # objectness falls off around the contrast centroid
_BOX_SPREAD = 3.2  # box side = 3.2 * std of the contrast's spatial spread (a uniform spread covers ~its extent)
_PERSON_PROBABILITY = 0.95
_OTHER_CLASS_PROBABILITY = 0.02  # * objectness <= 0.02, below the 0.1 NMS threshold

# Pose model: SimCC with split ratio 2 on a 288x384 (w x h) crop.
POSE_INPUT_HW = (384, 288)
SIMCC_SPLIT_RATIO = 2
NUM_KEYPOINTS = 133
_PIXEL_MEAN = np.array([123.675, 116.28, 103.53])
_PIXEL_STD = np.array([58.395, 57.12, 57.375])
_BORDER_MARGIN_PX = 8  # texture within this distance of the crop's black border is ignored
_POSE_TEXTURE_THRESHOLD = 0.004  # mean |gradient| (normalised units) at which scores are halved
_POSE_TEXTURE_GAIN = 1500.0
_OFFSET_GAIN = 0.25  # keypoints follow the crop's texture centroid by this fraction...
_OFFSET_LIMIT_PX = 8.0  # ...up to this many crop pixels
_SIMCC_SLOPE = 0.004  # simcc value drop per bin away from the keypoint location


def make_tiny_model(out_dir: Path, seed: int = 0) -> None:
    """Write the tiny model directory to ``out_dir`` (created if needed; existing files are replaced).

    The same ``seed`` gives the same bytes in every file.
    """
    out_dir = Path(out_dir)
    svd_dir = out_dir / SVD_DIR
    # 1. The SVD diffusers folder: configs, VAE and CLIP weights (the UNet is config-only, reference §2).
    unet = _seeded(lambda: UNetSpatioTemporalConditionModel(**UNET_CONFIG), seed, seed_offset=0)
    vae = _seeded(lambda: AutoencoderKLTemporalDecoder(**VAE_CONFIG), seed, seed_offset=1)
    clip_config = CLIPVisionConfig(**CLIP_CONFIG, architectures=["CLIPVisionModelWithProjection"])
    image_encoder = _seeded(lambda: CLIPVisionModelWithProjection(clip_config), seed, seed_offset=2)
    _write_json(svd_dir / "model_index.json", {**MODEL_INDEX, "_diffusers_version": diffusers.__version__})
    _write_json(svd_dir / "unet" / "config.json", _diffusers_config(unet))
    _write_json(svd_dir / "vae" / "config.json", _diffusers_config(vae))
    _save_safetensors(vae, svd_dir / "vae" / "diffusion_pytorch_model.safetensors")
    _write_json(svd_dir / "image_encoder" / "config.json", json.loads(clip_config.to_json_string()))
    _save_safetensors(image_encoder, svd_dir / "image_encoder" / "model.safetensors")
    _write_json(svd_dir / "feature_extractor" / "preprocessor_config.json", FEATURE_EXTRACTOR_CONFIG)
    _write_json(svd_dir / "scheduler" / "scheduler_config.json", SCHEDULER_CONFIG)
    # 2. The MimicMotion checkpoint: UNet and PoseNet weights under their container prefixes.
    pose_net = _seeded(lambda: PoseNet(out_channels=UNET_CONFIG["block_out_channels"][0]), seed, seed_offset=3)
    _save_checkpoint({"unet": unet, "pose_net": pose_net}, out_dir / CHECKPOINT_FILE)
    # 3. The DWPose ONNX files.
    _save_onnx(build_detector(), out_dir / DETECTOR_FILE)
    _save_onnx(build_pose_model(), out_dir / POSE_MODEL_FILE)
    # 4. A marker, so services can say loudly that they run random weights.
    _write_json(out_dir / TINY_MARKER_FILE, {"tiny": True, "seed": seed})


# ---------------------------------------------------------------------------------------------------------
# torch components


def _seeded(build: Callable[[], ModuleT], seed: int, seed_offset: int) -> ModuleT:
    """Build a module under its own seed without touching the caller's RNG, then refill its zeros."""
    component_seed = seed * 16 + seed_offset  # one stream per component: editing one keeps the others
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(component_seed)
        module = build()
    _refill_zeros(cast(nn.Module, module), torch.Generator().manual_seed(component_seed))
    cast(nn.Module, module).eval()
    return module


def _refill_zeros(module: nn.Module, generator: torch.Generator) -> None:
    """Replace every zero entry of every floating tensor, so each path changes the output.

    Zero inits (norm biases, PoseNet ``final_proj``, VAE ``mix_factor``...) become N(0, 0.02). Every
    AlphaBlender ``mix_factor`` becomes +-(0.5..1.5), so sigmoid(mix) blends both branches unevenly.
    """
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict(keep_vars=True).items()):
            if not tensor.is_floating_point():
                continue
            if name.endswith("mix_factor"):
                magnitude = 0.5 + torch.rand(tensor.shape, generator=generator)
                sign = torch.where(torch.rand(tensor.shape, generator=generator) < 0.5, -1.0, 1.0)
                tensor.copy_(sign * magnitude)
                continue
            replacement = torch.randn(tensor.shape, generator=generator) * _REFILL_STD
            # a drawn exact zero would defeat the point; nudge it (probability ~0, but cheap)
            replacement = torch.where(replacement == 0, _REFILL_STD, replacement)
            tensor.copy_(torch.where(tensor == 0, replacement.to(tensor.dtype), tensor))


def _state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    # Own, contiguous storage per tensor: the files then hold only what each key names.
    return {name: tensor.detach().clone().contiguous() for name, tensor in module.state_dict().items()}


def _save_safetensors(module: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(_state_dict(module), str(path), metadata=_SAFETENSORS_METADATA)


def _save_checkpoint(modules: dict[str, Any], path: Path) -> None:
    """A plain OrderedDict like the released ``MimicMotion_1-1.pth``: ``unet.*`` then ``pose_net.*``."""
    checkpoint: OrderedDict[str, torch.Tensor] = OrderedDict()
    for prefix, module in modules.items():
        for name, tensor in _state_dict(module).items():
            checkpoint[f"{prefix}.{name}"] = tensor
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def _diffusers_config(model: Any) -> dict[str, Any]:
    """The config.json content diffusers' save_pretrained would write (with _class_name, _diffusers_version)."""
    return dict(json.loads(model.to_json_string()))


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------
# ONNX graphs


@dataclass
class _Graph:
    """Accumulates nodes and constants; each op returns the name of its (single) output."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        name = f"const_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attributes: Any) -> str:
        output = output or f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def model(
        self,
        name: str,
        inputs: list[tuple[str, tuple[int, ...]]],
        outputs: list[tuple[str, tuple[int, ...]]],
    ) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in outputs],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph,
            producer_name="mimicmotion-tiny",
            opset_imports=[helper.make_opsetid("", _ONNX_OPSET)],
            ir_version=_ONNX_IR_VERSION,
        )
        onnx.checker.check_model(model, full_check=True)
        return model


def _save_onnx(model: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def build_detector() -> onnx.ModelProto:
    """A YOLOX-shaped detector: "images" (1, 3, 640, 640) 0..255 -> "output" (1, 8400, 85).

    Only the 20x20 stride-32 anchors can score. Per cell: the grey-level variance of the non-padding
    pixels (1). Objectness = sigmoid(gain * (max cell std - threshold)) (2) times a Gaussian bump around
    the variance-weighted centroid of the cells (3). Every cell predicts the same box, centred on that
    centroid and sized by the spread of the variance (4), so the cells above the NMS threshold overlap
    fully and one person survives NMS; a flat image has zero variance everywhere and no detection.
    """
    g = _Graph()
    cells = DETECTOR_SIZE // DETECTOR_STRIDES[-1]
    stride = DETECTOR_STRIDES[-1]
    # 1. Texture per cell, from the pixels that are not the letterbox padding.
    is_pad = g.op("Cast", g.op("Equal", "images", g.const(_PAD_VALUE)), to=TensorProto.FLOAT)
    valid = g.op("Sub", g.const(1.0), g.op("ReduceMin", is_pad, axes=[1], keepdims=1))  # (1, 1, 640, 640)
    grey = g.op("Sub", g.op("ReduceMean", "images", axes=[1], keepdims=1), g.const(128.0))  # centred: less rounding
    valid_grey = g.op("Mul", valid, grey)

    def cell_mean(values: str) -> str:
        return g.op("AveragePool", values, kernel_shape=[stride, stride], strides=[stride, stride])

    count = g.op("Max", cell_mean(valid), g.const(1e-6))  # (1, 1, 20, 20)
    mean = g.op("Div", cell_mean(valid_grey), count)
    mean_square = g.op("Div", cell_mean(g.op("Mul", valid_grey, grey)), count)
    variance = g.op("Relu", g.op("Sub", mean_square, g.op("Mul", mean, mean)))
    std = g.op("Sqrt", variance)  # (1, 1, 20, 20)
    # 2. Is there any texture at all?
    texture = g.op("ReduceMax", std, keepdims=1)  # (1, 1, 1, 1)
    presence = g.op("Sigmoid", g.op("Mul", g.op("Sub", texture, g.const(_TEXTURE_THRESHOLD)), g.const(_TEXTURE_GAIN)))
    # 3. Centroid and spread of the texture, in cells (cell i spans [i, i + 1)).
    index = np.arange(cells, dtype=np.float32)
    grid_x = g.const(np.broadcast_to(index[None, :], (cells, cells))[None, None])
    grid_y = g.const(np.broadcast_to(index[:, None], (cells, cells))[None, None])
    centre_x_cells = g.const(np.broadcast_to(index[None, :] + 0.5, (cells, cells))[None, None])
    centre_y_cells = g.const(np.broadcast_to(index[:, None] + 0.5, (cells, cells))[None, None])
    # Variance weights let strong contrast (a figure) outweigh mild texture (a noisy background).
    total = g.op("Add", g.op("ReduceSum", variance, keepdims=1), g.const(1e-6))

    def weighted_mean(values: str) -> str:
        return g.op("Div", g.op("ReduceSum", g.op("Mul", variance, values), keepdims=1), total)

    centroid_x, centroid_y = weighted_mean(centre_x_cells), weighted_mean(centre_y_cells)
    dx, dy = g.op("Sub", centre_x_cells, centroid_x), g.op("Sub", centre_y_cells, centroid_y)
    spread_x = g.op("Sqrt", weighted_mean(g.op("Mul", dx, dx)))
    spread_y = g.op("Sqrt", weighted_mean(g.op("Mul", dy, dy)))
    distance_sq = g.op("Add", g.op("Mul", dx, dx), g.op("Mul", dy, dy))
    bump = g.op("Exp", g.op("Mul", distance_sq, g.const(-0.5 / _BUMP_SIGMA_CELLS**2)))
    objectness = g.op("Mul", presence, bump)  # (1, 1, 20, 20)
    # 4. The shared box, in YOLOX's encoding: xy = (out + grid) * stride, wh = exp(out) * stride. It is
    #    clipped to the image (the non-padding extent), as a real detector's boxes mostly are.
    shape = g.const([1, 1, cells, cells], dtype=np.int64)

    def box_axis(centroid: str, spread: str, grid: str, across_axis: int) -> tuple[str, str]:
        """(centre out, size out) along one axis, both (1, 1, 20, 20)."""
        extent = g.op("ReduceSum", g.op("ReduceMax", count, axes=[across_axis], keepdims=1), keepdims=1)
        half = g.op("Add", g.op("Mul", spread, g.const(_BOX_SPREAD / 2)), g.const(0.25))
        low = g.op("Max", g.op("Sub", centroid, half), g.const(0.0))
        high = g.op("Min", g.op("Add", centroid, half), extent)
        centre = g.op("Mul", g.op("Add", low, high), g.const(0.5))
        size = g.op("Max", g.op("Sub", high, low), g.const(0.25))
        return g.op("Sub", centre, grid), g.op("Expand", g.op("Log", size), shape)

    out_x, out_w = box_axis(centroid_x, spread_x, grid_x, across_axis=2)
    out_y, out_h = box_axis(centroid_y, spread_y, grid_y, across_axis=3)
    classes = np.full((1, 80, 1, 1), _OTHER_CLASS_PROBABILITY, dtype=np.float32)
    classes[0, 0] = _PERSON_PROBABILITY
    head = g.op(
        "Concat",
        out_x,
        out_y,
        out_w,
        out_h,
        objectness,
        g.op("Expand", g.const(classes), g.const([1, 80, cells, cells], dtype=np.int64)),
        axis=1,
    )  # (1, 85, 20, 20)
    head = g.op("Transpose", g.op("Reshape", head, g.const([1, 85, cells * cells], dtype=np.int64)), perm=[0, 2, 1])
    # The stride-8 and stride-16 anchors (80x80 + 40x40) come first, with objectness 0.
    num_fine = sum((DETECTOR_SIZE // s) ** 2 for s in DETECTOR_STRIDES[:-1])
    fine = g.op("Expand", g.const(np.zeros((1, 1, 85))), g.const([1, num_fine, 85], dtype=np.int64))
    g.op("Concat", fine, head, axis=1, output="output")
    num_anchors = num_fine + cells * cells
    return g.model(
        "tiny_yolox",
        inputs=[("images", (1, 3, DETECTOR_SIZE, DETECTOR_SIZE))],
        outputs=[("output", (1, num_anchors, 85))],
    )


def build_pose_model() -> onnx.ModelProto:
    """A DWPose-shaped SimCC model: "input" (1, 3, 384, 288) -> "simcc_x" (1, 133, 576), "simcc_y" (1, 133, 768).

    simcc = score_k - slope * |bin - location_k|, so argmax = location and max = score. The location is
    a whole-body template shifted toward the texture centroid of the crop (1-3); the score is the
    template score times sigmoid(gain * (mean |gradient| - threshold)) (4), so a flat crop (the black
    border of the crop excluded) scores near zero.
    """
    g = _Graph()
    height, width = POSE_INPUT_HW
    # 1. Valid pixels: not the crop's constant-0 border (normalised), nor within a margin of it, since
    #    bilinear warping blends the border into the image over up to one source pixel.
    border = ((0.0 - _PIXEL_MEAN) / _PIXEL_STD).reshape(1, 3, 1, 1)
    near_border = g.op("Less", g.op("Abs", g.op("Sub", "input", g.const(border))), g.const(1e-3))
    is_border = g.op("ReduceMin", g.op("Cast", near_border, to=TensorProto.FLOAT), axes=[1], keepdims=1)
    margin = _BORDER_MARGIN_PX
    # Pad with 1 so the crop's own frame counts as border too.
    padded = g.op("Pad", is_border, g.const([0, 0, margin, margin, 0, 0, margin, margin], dtype=np.int64), g.const(1.0))
    invalid = g.op("MaxPool", padded, kernel_shape=[2 * margin + 1, 2 * margin + 1])  # (1, 1, 384, 288)
    valid = g.op("Sub", g.const(1.0), invalid)
    # 2. Texture energy: |central difference| in x and y of the grey image, on valid pixels only.
    grey = g.op("ReduceMean", "input", axes=[1], keepdims=1)
    kernels = np.zeros((2, 1, 3, 3), dtype=np.float32)
    kernels[0, 0, 1] = [-0.5, 0.0, 0.5]
    kernels[1, 0, :, 1] = [-0.5, 0.0, 0.5]
    gradients = g.op("Abs", g.op("Conv", grey, g.const(kernels), pads=[1, 1, 1, 1]))  # (1, 2, 384, 288)
    energy = g.op("Mul", g.op("ReduceSum", gradients, g.const([1], dtype=np.int64), keepdims=1), valid)
    total = g.op("ReduceSum", energy, keepdims=1)  # (1, 1, 1, 1)
    # 3. Offset toward the energy centroid (the crop centre when there is no energy).
    eps = 1e-6

    def offset(axis: int, size: int) -> str:
        """Shift along ``axis`` (3: x, 2: y): the energy profile along it, summed over the other axis."""
        profile = g.op("ReduceSum", energy, g.const([5 - axis], dtype=np.int64), keepdims=1)
        coordinates = np.arange(size, dtype=np.float32).reshape([1] * axis + [size] + [1] * (3 - axis))
        middle = (size - 1) / 2  # the crop centre in pixel-index coordinates
        moment = g.op("ReduceSum", g.op("Mul", profile, g.const(coordinates)), keepdims=1)
        centroid = g.op("Div", g.op("Add", moment, g.const(eps * middle)), g.op("Add", total, g.const(eps)))
        shift = g.op("Mul", g.op("Sub", centroid, g.const(middle)), g.const(_OFFSET_GAIN))
        shift = g.op("Clip", shift, g.const(-_OFFSET_LIMIT_PX), g.const(_OFFSET_LIMIT_PX))
        return g.op("Reshape", shift, g.const([1, 1, 1], dtype=np.int64))  # (1, 1, 1) crop pixels

    shift_x, shift_y = offset(axis=3, size=width), offset(axis=2, size=height)
    # 4. Scores: the template's, gated by the mean texture energy.
    count = g.op("Add", g.op("ReduceSum", valid, keepdims=1), g.const(1.0))
    mean_energy = g.op("Div", total, count)
    gate = g.op(
        "Sigmoid", g.op("Mul", g.op("Sub", mean_energy, g.const(_POSE_TEXTURE_THRESHOLD)), g.const(_POSE_TEXTURE_GAIN))
    )
    scores = g.op(
        "Mul", g.const(keypoint_scores().reshape(1, -1, 1)), g.op("Reshape", gate, g.const([1, 1, 1], dtype=np.int64))
    )
    template = wholebody_template()

    def simcc(column: int, shift: str, num_bins: int, output: str) -> None:
        location = g.op("Add", g.const(template[:, column].reshape(1, -1, 1)), shift)  # (1, 133, 1) pixels
        bins = g.const(np.arange(num_bins, dtype=np.float32).reshape(1, 1, -1) / SIMCC_SPLIT_RATIO)
        distance = g.op("Abs", g.op("Sub", bins, location))  # (1, 133, bins), in pixels
        g.op("Sub", scores, g.op("Mul", distance, g.const(_SIMCC_SLOPE * SIMCC_SPLIT_RATIO)), output=output)

    simcc(0, shift_x, width * SIMCC_SPLIT_RATIO, "simcc_x")
    simcc(1, shift_y, height * SIMCC_SPLIT_RATIO, "simcc_y")
    return g.model(
        "tiny_dwpose",
        inputs=[("input", (1, 3, height, width))],
        outputs=[
            ("simcc_x", (1, NUM_KEYPOINTS, width * SIMCC_SPLIT_RATIO)),
            ("simcc_y", (1, NUM_KEYPOINTS, height * SIMCC_SPLIT_RATIO)),
        ],
    )


# ---------------------------------------------------------------------------------------------------------
# The whole-body template (COCO-WholeBody order) in 288x384 crop pixels, and its scores.

# 17 body points, COCO order; the person faces the camera, so their left is on the image's right.
_BODY = (
    ("nose", 144, 70, 0.92),
    ("left_eye", 152, 62, 0.88),
    ("right_eye", 136, 62, 0.90),
    ("left_ear", 162, 66, 0.70),
    ("right_ear", 126, 66, 0.65),
    ("left_shoulder", 184, 110, 0.95),
    ("right_shoulder", 104, 110, 0.93),
    ("left_elbow", 200, 165, 0.20),  # below 0.3: the limb is not drawn
    ("right_elbow", 88, 165, 0.80),
    ("left_wrist", 208, 215, 0.55),
    ("right_wrist", 80, 215, 0.25),  # below 0.3
    ("left_hip", 170, 215, 0.85),
    ("right_hip", 118, 215, 0.87),
    ("left_knee", 172, 280, 0.78),
    ("right_knee", 116, 280, 0.80),
    ("left_ankle", 174, 340, 0.70),
    ("right_ankle", 114, 340, 0.72),
)
# 6 feet: left big toe, small toe, heel; right big toe, small toe, heel.
_FEET = ((184, 352, 0.35), (194, 350, 0.28), (170, 346, 0.50), (104, 352, 0.45), (94, 350, 0.15), (118, 346, 0.60))
_FACE_CENTRE = (144.0, 66.0)
_TEMPLATE_SHRINK = 0.88


def wholebody_template() -> np.ndarray:
    """(133, 2) float32 keypoint locations (x, y) in crop pixels: body, feet, face (68), left and right hand."""
    body = [(x, y) for _, x, y, _ in _BODY]
    feet = [(x, y) for x, y, _ in _FEET]
    left_wrist, right_wrist = body[9], body[10]
    points = np.array(body + feet, dtype=np.float64)
    points = np.concatenate([points, _face(*_FACE_CENTRE), _hand(left_wrist, 1.0), _hand(right_wrist, -1.0)])
    assert points.shape == (NUM_KEYPOINTS, 2)
    # Shrink toward the crop centre: the head then sits well inside the detector box (the crop pads the
    # box by 1.25), so a person whose box touches the frame's top still has their eyes in the frame.
    crop_centre = np.array([POSE_INPUT_HW[1], POSE_INPUT_HW[0]]) / 2
    return (crop_centre + (points - crop_centre) * _TEMPLATE_SHRINK).astype(np.float32)


def keypoint_scores() -> np.ndarray:
    """(133,) float32 template scores: body mostly above 0.3 (left elbow 0.2, right wrist 0.25), face
    spread over 0.2..0.9, each hand over 0.05..1.0 (co-prime strides scatter the values over the points).
    """
    body = [score for *_, score in _BODY]
    feet = [score for *_, score in _FEET]
    face = 0.2 + 0.7 * ((np.arange(68) * 37) % 68) / 67
    left_hand = 0.05 + 0.95 * ((np.arange(21) * 8) % 21) / 20
    right_hand = 0.05 + 0.95 * ((np.arange(21) * 13) % 21) / 20
    return np.concatenate([body, feet, face, left_hand, right_hand]).astype(np.float32)


def _face(centre_x: float, centre_y: float) -> np.ndarray:
    """The 68 iBUG landmarks: jaw, brows, nose, eyes, mouth, around a head centre."""

    def ellipse(cx: float, cy: float, rx: float, ry: float, count: int) -> list[tuple[float, float]]:
        angles = np.pi - 2 * np.pi * np.arange(count) / count
        return [(cx + rx * np.cos(a), cy - ry * np.sin(a)) for a in angles]

    jaw_angles = np.pi * np.arange(17) / 16
    jaw = [(centre_x - 16 * np.cos(a), centre_y - 4 + 22 * np.sin(a)) for a in jaw_angles]
    right_brow = [(centre_x - 14 + 2.5 * i, centre_y - 12) for i in range(5)]
    left_brow = [(centre_x + 4 + 2.5 * i, centre_y - 12) for i in range(5)]
    bridge = [(centre_x, centre_y - 8 + 3 * i) for i in range(4)]
    nostrils = [(centre_x - 4 + 2 * i, centre_y + 4) for i in range(5)]
    right_eye = ellipse(centre_x - 8, centre_y - 6, 3, 1.5, 6)
    left_eye = ellipse(centre_x + 8, centre_y - 6, 3, 1.5, 6)
    outer_lips = ellipse(centre_x, centre_y + 10, 7, 3, 12)
    inner_lips = ellipse(centre_x, centre_y + 10, 4, 1.5, 8)
    parts = jaw + right_brow + left_brow + bridge + nostrils + right_eye + left_eye + outer_lips + inner_lips
    return np.array(parts, dtype=np.float64)


def _hand(wrist: tuple[float, float], side: float) -> np.ndarray:
    """21 hand points hanging down from the wrist: wrist, then thumb, index, middle, ring, pinky (4 each).

    ``side`` is +1 for the hand on the image's right (the person's left); the thumb is on the outer side.
    """
    wrist_x, wrist_y = wrist
    points = [(wrist_x, wrist_y)]
    for finger, lateral in enumerate((-8.0, -4.0, 0.0, 4.0, 8.0)):
        length = 4.0 if finger == 0 else 6.0  # the thumb is shorter
        for joint in range(1, 5):
            points.append((wrist_x - side * lateral * (0.5 + 0.15 * joint), wrist_y + 4 + length * joint))
    return np.array(points, dtype=np.float64)
