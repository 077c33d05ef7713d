"""A tiny, seeded Wan-Animate model directory in the published layout, built offline (wan-animate-reference
§4): random weights at diffusers' test sizes, for tests and ``make-tiny-model``, never for real output.

Departures from diffusers' own tiny test, towards the real folder: ``UMT5EncoderModel``, ``CLIPVisionModel``,
UniPC with flow sigmas, and ``added_kv_proj_dim`` set, so the image tokens take the real path (a separate
image cross-attention, split off at 512 text tokens; the pipeline's default ``max_sequence_length``).
"""

import json
import string
from pathlib import Path
from typing import Any

import diffusers
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.models.transformers.transformer_wan_animate import WanAnimateTransformer3DModel
from diffusers.pipelines.wan.pipeline_wan_animate import WanAnimatePipeline
from diffusers.schedulers.scheduling_unipc_multistep import UniPCMultistepScheduler
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    T5Tokenizer,
    UMT5Config,
    UMT5EncoderModel,
)

from core.backends.wan_animate.files import DETECTOR_FILE, POSE_MODEL_FILE
from core.models.files import TINY_MARKER_FILE
from core.models.tiny.detector import build_detector
from core.models.tiny.onnx_graph import save_onnx
from core.models.tiny.pose_model import build_pose_model
from core.models.tiny.weights import seeded, write_json

TEXT_CONFIG: dict[str, Any] = {  # hf-internal-testing/tiny-random-t5, as UMT5 (the real folder's class)
    "d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 5, "num_heads": 4, "relative_attention_num_buckets": 8,
    "feed_forward_proj": "relu", "dropout_rate": 0.1, "initializer_factor": 0.002, "vocab_size": 1103,
    "pad_token_id": 0, "eos_token_id": 1,
}  # fmt: skip
VAE_CONFIG: dict[str, Any] = {
    "base_dim": 3, "z_dim": 16, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}  # fmt: skip
IMAGE_CONFIG: dict[str, Any] = {
    "hidden_size": 4, "projection_dim": 4, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 4,
    "intermediate_size": 16, "patch_size": 1,
}  # fmt: skip
TRANSFORMER_CONFIG: dict[str, Any] = {
    "patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 36,
    "latent_channels": 16, "out_channels": 16, "text_dim": 32, "freq_dim": 256, "ffn_dim": 32, "num_layers": 2,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "image_dim": 4, "added_kv_proj_dim": 24,
    "rope_max_seq_len": 1024, "motion_encoder_channel_sizes": {"4": 16, "8": 16, "16": 16},
    "motion_encoder_size": 16, "motion_style_dim": 8, "motion_dim": 4, "motion_encoder_dim": 16,
    "face_encoder_hidden_dim": 16, "face_encoder_num_heads": 2, "inject_face_latents_blocks": 2,
}  # fmt: skip
SCHEDULER_CONFIG: dict[str, Any] = {  # the real folder's (reference §5): flow prediction on flow sigmas, shift 5
    "prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 5.0, "num_train_timesteps": 1000,
}  # fmt: skip


# (W, H) of each resolution's area on the tiny model: its random weights draw noise at any size, and the
# published areas take minutes per segment on a CPU (480p: 73 s for 17 frames). Read by the backend.
TINY_AREAS = {"480p": [32, 32], "720p": [48, 32]}


def _tokenizer() -> T5Tokenizer:
    """A Unigram tokenizer built in memory (§4 "Offline build"): <pad> 0, </s> 1, <unk> 2, then "▁" and
    printable ASCII pieces."""
    pieces = ["▁", *string.ascii_letters, *string.digits, *string.punctuation]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [
        (piece, -1.0 - i / 100) for i, piece in enumerate(pieces)
    ]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def make_tiny_wan_model(directory: Path | str, *, seed: int = 0) -> Path:
    """Write the tiny model directory to ``directory`` (created if needed) and return its path.

    ``WanAnimatePipeline.from_pretrained(directory)`` loads it offline; the DWPose files are MimicMotion's
    tiny ones (a detector that finds one person on any textured image, a template pose model).
    """
    root = Path(directory)
    pipeline = WanAnimatePipeline(
        tokenizer=_tokenizer(),  # type: ignore[arg-type]  # annotated AutoTokenizer, a factory, not a base class
        text_encoder=seeded(lambda: UMT5EncoderModel(UMT5Config(**TEXT_CONFIG)), seed, seed_offset=0),
        vae=seeded(lambda: AutoencoderKLWan(**VAE_CONFIG), seed, seed_offset=1),
        scheduler=UniPCMultistepScheduler(**SCHEDULER_CONFIG),
        image_processor=CLIPImageProcessor(crop_size=4, size=4),
        image_encoder=seeded(lambda: CLIPVisionModel(CLIPVisionConfig(**IMAGE_CONFIG)), seed, seed_offset=2),
        transformer=seeded(lambda: WanAnimateTransformer3DModel(**TRANSFORMER_CONFIG), seed, seed_offset=3),
    )
    pipeline.save_pretrained(root)
    # The published folder's class names (§5); without torchvision, transformers saves the PIL processor's
    # name, and T5TokenizerFast is T5Tokenizer in transformers 5.
    index_path = root / "model_index.json"
    model_index = json.loads(index_path.read_text())
    model_index.update(
        image_processor=["transformers", "CLIPImageProcessor"], tokenizer=["transformers", "T5TokenizerFast"]
    )
    write_json(index_path, model_index)
    save_onnx(build_detector(), root / DETECTOR_FILE)
    save_onnx(build_pose_model(), root / POSE_MODEL_FILE)
    marker = {"tiny": True, "seed": seed, "diffusers": diffusers.__version__, "areas": TINY_AREAS}
    write_json(root / TINY_MARKER_FILE, marker)
    return root
