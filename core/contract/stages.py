"""The stages of a job, in order, and the one timer that measures them.

``Stage`` names both ``progress.stage`` and the keys of a job's ``timings``; the pipeline, the job run
and the stage histograms all use it, so a stage has one name everywhere. No torch: a caller that runs
work on an accelerator passes ``synchronize`` so queued device work lands in its own stage.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum


class Stage(StrEnum):
    """A job's stages, in the order a job runs them."""

    fetching = "fetching"  # download and decode the inputs
    pose = "pose"  # DWPose on every frame, alignment to the reference, drawing
    conditioning = "conditioning"  # CLIP and VAE encoding of the reference, PoseNet on every pose frame
    denoising = "denoising"
    decoding = "decoding"  # VAE decoding of the latents to frames
    encoding = "encoding"  # H.264 of the result and its pose video
    uploading = "uploading"


def _no_sync() -> None:
    return None


class StageTimer:
    """Seconds per stage, ``timings[stage.value]``, rounded to 0.1 ms; a stage timed twice keeps the last."""

    def __init__(
        self, clock: Callable[[], float] = time.perf_counter, synchronize: Callable[[], None] = _no_sync
    ) -> None:
        self.clock = clock
        self.synchronize = synchronize  # e.g. torch.cuda.synchronize: the stage's GPU work ends inside it
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, stage: Stage, *, synchronize: Callable[[], None] | None = None) -> Iterator[None]:
        """Time the block as ``stage``; ``synchronize`` replaces the timer's own wait for this stage."""
        started = self.clock()
        yield
        (synchronize or self.synchronize)()
        self.timings[stage.value] = round(self.clock() - started, 4)
