"""The tiny model's configs: a UNet, VAE and CLIP small enough for CPU tests, and the released SVD folder's
scheduler, feature extractor and model index files.
"""

from typing import Any

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
