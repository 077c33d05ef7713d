"""MimicMotionPipeline: pose-guided video generation with progressive latent fusion (reference §4, §5).

Follows the original's order and random draws; faster by batching guidance branches and tiles into
one UNet call and running PoseNet once per frame; ``PerformanceOptions`` add compile, memory modes
and tiles spread over devices. Three stages, callable one by one: ``prepare_denoising`` (steps 0-8),
``denoise`` (9), ``decode`` (10-11). Shapes: N' = N + 1 frames (reference frame 0 first), T frames
per tile, H, W pixels, h, w = H/8, W/8 latent, 4 latent channels, C PoseNet channels.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

from core.contract.stages import Stage, StageTimer
from core.models.loading import MimicMotionModels
from core.pipeline import conditioning
from core.pipeline.decoding import auto_chunks_per_call, decode_latents
from core.pipeline.denoising import (
    TileConditioning,
    TileModel,
    apply_guidance,
    auto_tiles_per_call,
    predict_fused_noise,
    tile_frame_indices,
)
from core.pipeline.performance import PerformanceOptions, apply_performance, replicate_unet
from core.pipeline.sigmas import SigmaSchedule, align_your_steps_sigmas
from core.pipeline.tiling import fusion_weights, tile_indices

logger = logging.getLogger(__name__)

OnStep = Callable[[int, int], None]
# (step, total_steps, the denoised estimate x0 of every frame, (1, N', 4, h, w)), e.g. for live previews
OnEstimate = Callable[[int, int, torch.Tensor], None]
# (step, total_steps, the latents after that step, (1, N', 4, h, w)): with the step, the loop's whole state
# (the Euler scheduler draws no noise per step), e.g. for resumable checkpoints
OnLatents = Callable[[int, int, torch.Tensor], None]


@dataclass
class MimicMotionOutput:
    """Generated frames and the seconds spent per stage."""

    frames: np.ndarray  # (N, H, W, 3) uint8: one frame per pose frame, reference frame dropped
    timings: dict[str, float] = field(default_factory=dict)  # conditioning, denoising, decoding (Stage values)


@dataclass
class DenoisingState:
    """Everything the denoising loop needs, made once by ``prepare_denoising`` and used by one ``denoise``.

    The scheduler counts its steps, so a state denoises once; prepare another for another run.
    """

    latents: torch.Tensor  # (1, N', 4, h, w) initial noise (RNG draw 2), in the latents dtype
    scheduler: EulerDiscreteScheduler  # timesteps set for num_inference_steps
    conditioning: TileConditioning  # CLIP embedding, image latents, time ids, pose latents (N', C, h, w)
    tile_frames: list[torch.Tensor]  # (T,) frame indices per tile, on the main device
    fusion_weights: torch.Tensor  # (T,) per frame of a tile, in the latents dtype
    guidance: torch.Tensor  # (1, N', 1, 1, 1) per-frame guidance scale
    tiles_per_call: int  # tiles per UNet call
    helpers: list[TileModel]  # UNet replicas on the extra tile devices, with their own conditioning
    num_inference_steps: int


class MimicMotionPipeline:
    """Runs MimicMotion on loaded models; the models stay on their device between calls.

    ``__call__`` runs the three stages; a job run may call ``prepare_denoising``, ``denoise`` and
    ``decode`` itself, timing each with ``synchronize``.
    """

    def __init__(self, models: MimicMotionModels, options: PerformanceOptions | None = None) -> None:
        self.models = models
        self.options = options or PerformanceOptions()
        # Replicas first: a compiled UNet is compiled for its own device.
        self.helper_unets = replicate_unet(models.unet, self.options.tile_devices)
        apply_performance(models, self.options, self.helper_unets)
        self.vae_scale_factor = 2 ** (len(models.vae.config["block_out_channels"]) - 1)
        # The original ran everything in fp16, its weights, guidance and latents included. bfloat16 has
        # too few mantissa bits for the fused sums, so there we keep latents and fusion in float32.
        self.latents_dtype = torch.float32 if models.dtype == torch.bfloat16 else models.dtype

    @torch.no_grad()
    def __call__(
        self,
        image: np.ndarray,
        pose_frames: np.ndarray,
        *,
        seed: int,
        num_inference_steps: int,
        guidance_scale: float,
        noise_aug_strength: float,
        tile_size: int,
        tile_overlap: int,
        sigma_schedule: SigmaSchedule,
        decode_chunk_size: int,
        tiles_per_call: int | None = None,
        decode_chunks_per_call: int | None = None,
        on_step: OnStep | None = None,
    ) -> MimicMotionOutput:
        """Animate ``image`` along ``pose_frames``: ``prepare_denoising``, ``denoise``, ``decode``, timed.

        Arguments as those three take them; the parameters' defaults live in ``JobParams`` and
        ``Settings.decode_chunk_size``.
        """
        timer = StageTimer(synchronize=self.synchronize)
        # 0. Decoding's inputs first, so a bad chunk size fails before the denoising loop, not after it
        _check_counts(decode_chunk_size=decode_chunk_size, decode_chunks_per_call=decode_chunks_per_call)
        # 0-8. The other inputs, conditioning, timesteps, initial latents, guidance, tile layout, pose latents
        with timer.stage(Stage.conditioning):
            state = self.prepare_denoising(
                image, pose_frames, seed=seed, num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale, noise_aug_strength=noise_aug_strength, tile_size=tile_size,
                tile_overlap=tile_overlap, sigma_schedule=sigma_schedule, tiles_per_call=tiles_per_call,
            )  # fmt: skip
        # 9. Denoising loop
        with timer.stage(Stage.denoising):
            latents = self.denoise(state, on_step=on_step)
        # 10-11. Chunked VAE decode, reference frame dropped
        with timer.stage(Stage.decoding):
            frames = self.decode(
                latents, decode_chunk_size=decode_chunk_size, decode_chunks_per_call=decode_chunks_per_call
            )
        return MimicMotionOutput(frames=frames, timings=timer.timings)

    @torch.no_grad()
    def prepare_denoising(
        self,
        image: np.ndarray,
        pose_frames: np.ndarray,
        *,
        seed: int,
        num_inference_steps: int,
        guidance_scale: float,
        noise_aug_strength: float,
        tile_size: int,
        tile_overlap: int,
        sigma_schedule: SigmaSchedule,
        tiles_per_call: int | None = None,
    ) -> DenoisingState:
        """Steps 0-8: check the inputs, encode the conditioning, draw the initial latents, lay out the tiles.

        Args:
            image: (H, W, 3) uint8 reference image, already resized and cropped (the array DWPose saw).
            pose_frames: (N + 1, H, W, 3) uint8 drawn poses, the reference image's own pose first.
            seed: seeds the CPU generator of every random draw, so a seed gives the same noise anywhere.
            sigma_schedule: "karras" (the original's) or "align_your_steps" (good at 10 or fewer steps).
            tiles_per_call: tiles per UNet call; None picks 1 on CPU and what free memory allows on CUDA.
        """
        models = self.models
        # 0. Inputs
        self._check_inputs(image, pose_frames)
        _check_counts(num_inference_steps=num_inference_steps, tiles_per_call=tiles_per_call)
        num_frames = len(pose_frames)
        height, width = image.shape[:2]
        latent_size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        do_classifier_free_guidance = guidance_scale > 1.0  # departure: <= 1 skips uncond (reference §4.1 step 1)
        generator = torch.Generator("cpu").manual_seed(seed)
        image = conditioning.round_trip_image(image, models.dtype)  # reference §4.0 step 8
        # 1. CLIP embedding (zeros for the uncond branch, built per UNet call)
        image_embeddings = conditioning.encode_image(models, image)
        # 2. Noise augmentation and VAE encoding (RNG draw 1)
        image_latents = conditioning.encode_vae_image(models, image, noise_aug_strength, generator)
        # 3. Added time ids (fps - 1)
        added_time_ids = conditioning.added_time_ids(models, noise_aug_strength)
        # 4. Timesteps
        scheduler = self._scheduler(num_inference_steps, sigma_schedule)
        # 5. Initial latents: one tile of noise, repeated over frames (RNG draw 2)
        tiles = tile_indices(num_frames, tile_size, tile_overlap)
        latents = self._prepare_latents(len(tiles[0]), num_frames, latent_size, scheduler, generator)
        # 6. Per-frame guidance, over the whole video (constant: the original passes min = max)
        guidance = torch.linspace(guidance_scale, guidance_scale, num_frames, dtype=self.latents_dtype)
        guidance = guidance.to(models.device).view(1, num_frames, 1, 1, 1)
        # 7. Tile layout and fusion weights (reference §5)
        weights = fusion_weights(len(tiles[0]), dtype=self.latents_dtype, device=models.device)
        if tiles_per_call is None:
            tiles_per_call = self.plan_tiles_per_call(
                len(tiles), len(tiles[0]), latent_size, do_classifier_free_guidance
            )
        # 8. Pose latents, once per frame
        pose_latents = conditioning.encode_poses(models, pose_frames)
        tile_conditioning = TileConditioning(
            image_embeddings, image_latents, added_time_ids, pose_latents, do_classifier_free_guidance
        )
        helpers = [
            TileModel(unet, tile_conditioning.to(unet.device), tile_frame_indices(tiles, unet.device))
            for unet in self.helper_unets
        ]
        return DenoisingState(
            latents, scheduler, tile_conditioning, tile_frame_indices(tiles, models.device), weights, guidance,
            tiles_per_call, helpers, num_inference_steps,
        )  # fmt: skip

    @torch.no_grad()
    def denoise(
        self,
        state: DenoisingState,
        *,
        on_step: OnStep | None = None,
        on_estimate: OnEstimate | None = None,
        on_latents: OnLatents | None = None,
        resume: tuple[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Step 9, the denoising loop: (1, N', 4, h, w) final latents.

        Args:
            resume: ``(step, latents)`` as ``on_latents`` saw them after ``step`` steps of the same job: the
                loop continues with step ``step + 1`` (none left after the last), and ends with the latents an
                uninterrupted loop would.
            on_step: called as ``on_step(step, total_steps)`` after each step (step counts from 1); it
                may raise ``JobCanceledError`` to stop between steps.
            on_estimate: called before ``on_step`` with the step's denoised estimate (the scheduler's
                ``pred_original_sample``); reading it changes nothing in the loop.
            on_latents: called before ``on_estimate`` with the latents after the step (not to be changed).
        """
        scheduler, num_steps = state.scheduler, state.num_inference_steps
        if scheduler.step_index is not None:
            raise ValueError("this DenoisingState was already denoised: prepare_denoising makes a fresh one")
        tile_frames, latents = state.tile_frames, state.latents
        first_step = 0
        if resume is not None:
            first_step, latents = resume
            if not 0 <= first_step <= num_steps or latents.shape != state.latents.shape:
                raise ValueError(f"cannot resume at step {first_step} of {num_steps} with latents {latents.shape}")
            latents = latents.to(state.latents.device, state.latents.dtype)
            # The scheduler finds its step index from this, not from the timestep (Karras timesteps may repeat).
            scheduler.set_begin_index(first_step)
        logger.info(
            "denoising %d frames in %d tiles of %d, %d tile(s) per UNet call, %d steps",
            latents.shape[1], len(tile_frames), len(tile_frames[0]), state.tiles_per_call, num_steps,
        )  # fmt: skip
        started = time.perf_counter()
        # 9. Denoising loop
        for step, t in enumerate(scheduler.timesteps[first_step:], start=first_step):
            latent_model_input = scheduler.scale_model_input(latents, t)
            noise_pred = predict_fused_noise(
                self.models.unet, latent_model_input, self._unet_timestep(t), state.conditioning, tile_frames,
                state.fusion_weights, state.tiles_per_call, cfg_mode=self.options.cfg_mode, helpers=state.helpers,
            )  # fmt: skip
            noise_pred = apply_guidance(noise_pred, state.guidance)
            # RNG draw 3 is skipped: the original's Euler step (diffusers 0.27) drew unused noise here
            # every step (s_churn = 0, so gamma = 0); nothing is drawn after it, so no output changes.
            # diffusers 0.42 draws only when gamma > 0.
            stepped = scheduler.step(noise_pred, t, latents, return_dict=True)
            latents = stepped.prev_sample
            if on_latents is not None:
                on_latents(step + 1, num_steps, latents)
            if on_estimate is not None:
                on_estimate(step + 1, num_steps, stepped.pred_original_sample)
            if on_step is not None:
                on_step(step + 1, num_steps)
        logger.info("denoised in %.2f s", time.perf_counter() - started)
        return latents

    @torch.no_grad()
    def decode(
        self, latents: torch.Tensor, *, decode_chunk_size: int, decode_chunks_per_call: int | None = None
    ) -> np.ndarray:
        """Steps 10-11: (1, N', 4, h, w) latents -> (N, H, W, 3) uint8 frames, the reference frame dropped.

        Args:
            decode_chunk_size: frames per temporal-decoder chunk; the decoder mixes frames only within a
                chunk, so it is part of the output.
            decode_chunks_per_call: whole chunks per VAE decoder call (the same frames up to float
                rounding, ``decoding.py``); None picks 1 on CPU and what free memory allows on CUDA.
        """
        _check_counts(decode_chunk_size=decode_chunk_size, decode_chunks_per_call=decode_chunks_per_call)
        vae = self.models.vae
        num_frames, latent_size = latents.shape[1], (latents.shape[-2], latents.shape[-1])
        if decode_chunks_per_call is None:
            decode_chunks_per_call = auto_chunks_per_call(vae, num_frames, latent_size, decode_chunk_size)
        logger.info(
            "decoding %d frames in chunks of %d, %d chunk(s) per VAE call",
            num_frames, decode_chunk_size, decode_chunks_per_call,
        )  # fmt: skip
        # 10. Chunked VAE decode: (1, N', 4, h, w) -> (N', H, W, 3) uint8
        frames = decode_latents(vae, latents, decode_chunk_size, decode_chunks_per_call)
        # 11. Output, reference frame dropped: (N, H, W, 3)
        return frames[1:]

    def synchronize(self) -> None:
        """Wait for the work queued on the models' device, so a stage timer charges it to its own stage."""
        if self.models.device.type == "cuda":
            torch.cuda.synchronize(self.models.device)

    def _check_inputs(self, image: np.ndarray, pose_frames: np.ndarray) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(
                f"image height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}"
            )
        if pose_frames.dtype != np.uint8 or pose_frames.shape[1:] != image.shape or len(pose_frames) < 2:
            raise ValueError(
                f"pose_frames must be (N + 1, {height}, {width}, 3) uint8 with N >= 1, "
                f"got {pose_frames.dtype} {pose_frames.shape}"
            )

    def _scheduler(self, num_inference_steps: int, sigma_schedule: SigmaSchedule) -> EulerDiscreteScheduler:
        scheduler = EulerDiscreteScheduler.from_config(self.models.scheduler_config)
        if sigma_schedule == "karras":  # the original's: the config's Karras sigmas (reference §4.1 step 6)
            scheduler.set_timesteps(num_inference_steps, device=self.models.device)
        else:
            scheduler.set_timesteps(sigmas=align_your_steps_sigmas(num_inference_steps), device=self.models.device)
        return scheduler

    def plan_tiles_per_call(
        self, num_tiles: int, num_tile_frames: int, latent_size: tuple[int, int], do_classifier_free_guidance: bool
    ) -> int:
        """Tiles per UNet call when the caller gives none: 1 on CPU, what memory allows on CUDA."""
        # Sequential guidance runs one row per call, so a call holds one row's activations.
        rows = 2 if do_classifier_free_guidance and self.options.cfg_mode == "batched" else 1
        size = auto_tiles_per_call(
            self.models.device, num_tiles, num_tile_frames, latent_size, rows, self.models.dtype.itemsize
        )
        # Spread over devices, a step's tiles must split into at least one group per device.
        num_devices = 1 + len(self.helper_unets)
        return min(size, -(-num_tiles // num_devices)) if num_devices > 1 else size

    def _prepare_latents(
        self,
        num_tile_frames: int,
        num_frames: int,
        latent_size: tuple[int, int],
        scheduler: EulerDiscreteScheduler,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """(1, N', 4, h, w): frame f starts from noise slot f mod T (reference §4.1 step 7)."""
        shape = (1, num_tile_frames, self.models.unet.config["in_channels"] // 2, *latent_size)
        # RNG draw 2: float32 on CPU, then moved and cast, so a seed means the same noise everywhere.
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        latents = noise.to(self.models.device, self.latents_dtype) * scheduler.init_noise_sigma
        repeats = num_frames // num_tile_frames + 1
        return latents.repeat(1, repeats, 1, 1, 1)[:, :num_frames]  # (1, T * repeats, ...) -> (1, N', ...)

    def _unet_timestep(self, t: torch.Tensor) -> torch.Tensor:
        # In fp16 the original's timesteps were fp16 (reference §4.1 step 6); float32 and bfloat16 runs
        # keep the scheduler's float32 t (bfloat16 would round it far more than the original did).
        return t.to(self.latents_dtype)


def _check_counts(**counts: int | None) -> None:
    """Each count given must be at least 1; None means "pick one" and passes."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
