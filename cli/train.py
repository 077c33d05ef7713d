"""``mimicmotion prepare-data`` and ``mimicmotion train``: flags, then one call into ``core.training``.

Multi-GPU training runs one process per GPU under torchrun, e.g.
``torchrun --nproc_per_node=8 -m cli.main train ...``; the trainer joins the process group itself.
"""

import argparse
import logging
import sys
from pathlib import Path

from core.settings import Settings
from core.training import defaults

logger = logging.getLogger(__name__)


def add_training_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``prepare-data`` and ``train`` on the ``mimicmotion`` subcommand parser."""
    prepare = commands.add_parser(
        "prepare-data", help="DWPose keypoints and scores of training videos, stored losslessly, with a manifest."
    )
    prepare.add_argument("--videos", type=Path, required=True, help="Directory of training videos (recursive).")
    prepare.add_argument("--out", type=Path, required=True, help="Data directory: manifest.json and poses/*.npz.")
    prepare.add_argument("--model-dir", type=Path, default=None, help="Model directory for DWPose (default: settings).")
    prepare.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="Device (default: settings).")
    prepare.add_argument(
        "--sample-stride", type=int, default=2, help="Frame step at 24-30 fps, doubled above (default: 2)."
    )
    prepare.add_argument("--min-frames", type=int, default=16, help="Usable frames a video needs (default: 16).")
    prepare.add_argument(
        "--hand-threshold", type=float, default=defaults.HAND_THRESHOLD,
        help=f"Only for the reliable-hand statistics in the manifest (default: {defaults.HAND_THRESHOLD}).",
    )  # fmt: skip

    train = commands.add_parser("train", help="Fine-tune UNet + PoseNet on prepared data (torchrun for multi-GPU).")
    train.add_argument("--data", type=Path, required=True, help="Data directory written by prepare-data.")
    train.add_argument("--model-dir", type=Path, required=True, help="Model directory to start from.")
    train.add_argument(
        "--out", type=Path, required=True, help="Output: checkpoints/, latest, metrics.jsonl, MimicMotion_1-1.pth."
    )
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="Device (default: auto).")
    _add_training_flags(train)


def _add_training_flags(train: argparse.ArgumentParser) -> None:
    flags: list[tuple[str, type, object, str]] = [
        ("--num-frames", int, 16, "Frames per clip, the reference frame 0 included"),
        ("--resolution", int, 576, "Short side of the frames (576 -> 576x1024)"),
        ("--batch-size", int, 1, "Clips per GPU and step"),
        ("--max-steps", int, 10_000, "Stop after this many optimisation steps"),
        ("--learning-rate", float, 1e-5, "AdamW learning rate after warm-up"),
        ("--warmup-steps", int, 500, "Linear warm-up steps"),
        ("--weight-decay", float, 1e-2, "AdamW weight decay"),
        ("--max-grad-norm", float, 1.0, "Gradient clipping norm (0: off)"),
        ("--cond-drop-prob", float, 0.1, "Share of samples with CLIP, reference latent and pose all dropped"),
        ("--hand-threshold", float, defaults.HAND_THRESHOLD, "A hand is amplified when all 21 scores exceed this"),
        ("--hand-factor", float, defaults.HAND_FACTOR, "Loss factor inside reliable-hand boxes"),
        ("--noise-aug-strength", float, 0.0, "Reference pixel noise and its micro-condition"),
        ("--p-mean", float, defaults.P_MEAN, "Mean of ln(sigma)"),
        ("--p-std", float, defaults.P_STD, "Std of ln(sigma)"),
        ("--samples-per-video", int, 1, "Clips per video and epoch"),
        ("--checkpoint-every", int, 500, "Steps between checkpoints"),
        ("--log-every", int, 10, "Steps between log lines"),
        ("--num-workers", int, 2, "DataLoader worker processes"),
        ("--seed", int, 0, "Seed of the data order and every random draw"),
    ]
    for flag, kind, default, text in flags:
        train.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default}).")
    train.add_argument(
        "--mixed-precision", choices=("auto", "bf16", "no"), default="auto",
        help="bf16 autocast (auto: bf16 on CUDA, none on CPU).",
    )  # fmt: skip
    train.add_argument(
        "--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false",
        help="Keep all activations (faster, much more memory).",
    )  # fmt: skip
    train.add_argument("--use-8bit-adam", action="store_true", help="bitsandbytes AdamW8bit (must be installed).")
    train.add_argument("--fresh-pose-net", action="store_true", help="Start PoseNet from scratch (zero output).")
    train.add_argument(
        "--no-fit-alignment", dest="fit_alignment", action="store_false",
        help="Draw clip poses where they are instead of fitting them onto the reference body as inference does.",
    )  # fmt: skip


def run_training_command(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch ``prepare-data`` or ``train``."""
    if args.command == "prepare-data":
        return _prepare_data_command(args, settings)
    return _train_command(args)


def _prepare_data_command(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from cli.local import _model_files
    from core.pose.wholebody import WholebodyEstimator
    from core.training.data_prep import find_videos, prepare_data

    files = _model_files(args, settings)
    estimator = WholebodyEstimator.from_model_files(files, device=args.device or settings.device)
    total = len(find_videos(args.videos))
    with tqdm(total=total, desc="prepare-data", unit="video", disable=not sys.stderr.isatty()) as bar:

        def on_video(name: str, outcome: str) -> None:
            bar.set_postfix_str(name[-30:])
            bar.update(1)

        manifest = prepare_data(
            args.videos, args.out, estimator, sample_stride=args.sample_stride, min_frames=args.min_frames,
            hand_threshold=args.hand_threshold, on_video=on_video,
        )  # fmt: skip
    for skipped in manifest.skipped:
        print(f"skipped {skipped['name']}: {skipped['reason']}")
    samples = sum(video.num_usable for video in manifest.videos)
    hands = [video.reliable_hand_fraction for video in manifest.videos]
    hand_share = sum(hands) / len(hands) if hands else 0.0
    print(
        f"{len(manifest.videos)} videos prepared, {len(manifest.skipped)} skipped, {samples} usable frames, "
        f"reliable hands (all scores > {args.hand_threshold}) in {hand_share:.0%} of usable frames -> {args.out}"
    )
    return 0


def _train_command(args: argparse.Namespace) -> int:
    from core.training.dataset import SampleConfig
    from core.training.trainer import TrainConfig, train

    sample = SampleConfig(
        num_frames=args.num_frames, resolution=args.resolution, hand_threshold=args.hand_threshold,
        hand_factor=args.hand_factor, fit_alignment=args.fit_alignment, samples_per_video=args.samples_per_video,
        seed=args.seed,
    )  # fmt: skip
    config = TrainConfig(
        data_dir=args.data, model_dir=args.model_dir, out_dir=args.out, sample=sample, batch_size=args.batch_size,
        max_steps=args.max_steps, learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm, cond_drop_prob=args.cond_drop_prob,
        noise_aug_strength=args.noise_aug_strength, p_mean=args.p_mean, p_std=args.p_std,
        mixed_precision=args.mixed_precision, gradient_checkpointing=args.gradient_checkpointing,
        use_8bit_adam=args.use_8bit_adam, fresh_pose_net=args.fresh_pose_net, checkpoint_every=args.checkpoint_every,
        log_every=args.log_every, num_workers=args.num_workers, seed=args.seed, device=args.device,
    )  # fmt: skip
    result = train(config)
    if result.checkpoint_dir is not None:
        print(f"trained to step {result.last_step}; checkpoint {result.checkpoint_dir}")
    return 0
