"""``mimicmotion submit``, ``download`` and ``delete``: the gateway's client commands, built on ``mimicmotion_client``.

Local files given to ``submit`` are uploaded to the gateway (any gateway, not only one on this machine);
``--wait`` follows the job's event stream with a progress bar (stage and step k/N). Exit status: 0 when the
job succeeded (or was only submitted, downloaded, deleted), 1 when it failed or was canceled, 2 when the
gateway refused the request or could not be reached.

Imported only by those commands: the gateway image, which runs ``mimicmotion serve``, has no client.
"""

import argparse
import json
import sys
from types import TracebackType

from mimicmotion_client import Client, Job, MimicMotionError

from cli.params import job_params_from_args


def submit_command(args: argparse.Namespace) -> int:
    params = job_params_from_args(args).model_dump(exclude_unset=True) or None
    if args.wait is False and args.out is not None:
        print("mimicmotion: error: --out downloads the result, which --no-wait does not wait for", file=sys.stderr)
        return 2
    wait = args.wait if args.wait is not None else args.out is not None  # --out implies waiting for the result
    try:
        with _client(args) as client:
            # --model (submit's parser in cli.main); None: the gateway's default model.
            job = client.submit(args.image, args.video, params, model=args.model)
            print(f"job {job.id} {job.status}", file=sys.stderr)
            if not wait:
                print(json.dumps(job.raw, indent=2))
                return 0
            with JobProgress() as progress:
                job = client.wait(job.id, on_progress=progress.show, timeout=args.timeout_s)
            if job.status != "succeeded":
                error = job.error
                code, message = (error.code, error.message) if error else (job.status, f"the job was {job.status}")
                print(f"mimicmotion: job {job.id} {job.status} [{code}]: {message}", file=sys.stderr)
                return 1
            if args.out is not None:
                client.download(job, args.out)
    except MimicMotionError as exc:
        return _refused(exc)
    output = job.output
    assert output is not None  # a succeeded job has one
    print(
        f"job {job.id} succeeded: {output.num_frames} frames at {output.width}x{output.height}, "
        f"seed {job.params.get('seed')}" + (f" -> {args.out}" if args.out else f"\n{output.video_url}")
    )
    return 0


def download_command(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            path = client.download(args.job_id, args.out, what="pose_video" if args.pose else "video")
    except MimicMotionError as exc:
        return _refused(exc)
    print(f"job {args.job_id}: {'pose video' if args.pose else 'video'} -> {path} ({path.stat().st_size} bytes)")
    return 0


def delete_command(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            job = client.delete(args.job_id)
    except MimicMotionError as exc:
        return _refused(exc)
    print(f"job {job.id} {job.status}: its stored data was removed at {job.raw.get('data_removed_at')}")
    return 0


def _client(args: argparse.Namespace) -> Client:
    """A client of ``--url`` with ``--api-key`` (else ``$MIMICMOTION_URL``, ``$MIMICMOTION_API_KEY``)."""
    return Client(args.url, args.api_key)


def _refused(exc: MimicMotionError) -> int:
    print(f"mimicmotion: error [{exc.code}]: {exc.message}", file=sys.stderr)
    return 2


def progress_label(job: Job) -> str:
    """What the bar says: the stage, with step k/N where the stage counts steps (denoising); else the status."""
    progress = job.progress
    if job.is_terminal or progress is None:
        ahead = f" ({job.queue_position} ahead)" if job.status == "queued" and job.queue_position else ""
        return job.status + ahead
    return progress.stage + (f" {progress.step}/{progress.total_steps}" if progress.total_steps > 1 else "")


class JobProgress:
    """A tqdm bar of the job's fraction on a terminal; elsewhere (logs, CI), or without tqdm (it comes with
    the [worker] extra), one line per stage."""

    def __init__(self) -> None:
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self._bar = None
        if tqdm is not None and sys.stderr.isatty():
            self._bar = tqdm(total=100, unit="%", bar_format="{desc:<16} {bar} {n:.0f}% [{elapsed}]")
        self._last_stage: str | None = None

    def show(self, job: Job) -> None:
        label = progress_label(job)
        stage = label.split(" ")[0]
        if self._bar is not None:
            self._bar.set_description_str(label)
            self._bar.update(round(100 * (job.progress.fraction if job.progress else 0.0)) - self._bar.n)
        elif stage != self._last_stage:
            print(f"job {job.id}: {label}", file=sys.stderr)
        self._last_stage = stage

    def __enter__(self) -> "JobProgress":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
