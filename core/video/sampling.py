"""Which decoded frames a sampled video keeps, and how often: every stride-th (MimicMotion) or at a frame rate
(Wan-Animate). Both decide frame by frame, in decoding order, so the decoder converts only the frames kept.

No decoding here and no torch.
"""

import math
from dataclasses import dataclass, field

import numpy as np


def rate_frame_indices(num_frames: int, source_fps: float, fps: float) -> np.ndarray:
    """The source frame behind each sample at ``fps``, as the Wan-Animate preprocessing picks them
    (wan-animate-reference §3 "Frame sampling", ``get_frame_indices``): ``int(num_frames / source_fps * fps)``
    samples, sample k is frame ``round(k / fps * source_fps)`` (half to even, as ``np.round``), clipped to
    the last frame. Above the source rate frames repeat; below it they are skipped.

    Returns:
        (K,) int64 frame indices, non-decreasing.
    """
    if source_fps <= 0 or fps <= 0:
        raise ValueError(f"frame rates must be positive, got source {source_fps} and target {fps}")
    num_samples = int(num_frames / source_fps * fps)
    times = np.arange(0, num_samples) / fps
    return np.clip(np.round(times * source_fps).astype(np.int64), 0, num_frames - 1)


@dataclass
class StrideSampling:
    """Every ``stride``-th frame: 0, stride, 2*stride, ..."""

    stride: int
    overshoot: int = 0  # frames kept while decoding beyond the final count (none: the count is exact)

    @property
    def description(self) -> str:
        return f"at a frame stride of {self.stride}"

    @property
    def remedy(self) -> str:
        return "a larger sample_stride"

    def num_samples(self, num_frames: int) -> int:
        return math.ceil(num_frames / self.stride)

    def copies(self, index: int) -> int:
        """How many times decoded frame ``index`` is kept; called once per frame, in decoding order."""
        return 1 if index % self.stride == 0 else 0


@dataclass
class RateSampling:
    """Samples at ``fps`` from a stream at ``source_fps``, as ``rate_frame_indices``, decided while decoding.

    Frame j is kept once for every sample k with ``round(k / fps * source_fps) == j``. The count
    ``int(num_frames / source_fps * fps)`` is known only when the stream ends, so the decoder keeps what the
    rounding asks for; the reader then cuts the surplus or repeats the last frame for samples the clipping maps
    onto it. The surplus is at most one frame: after frame j, every kept k has k <= (j + 1/2) * r (r = fps /
    source_fps), while the final count is at least int((j + 1) * r) > (j + 1) * r - 1.
    """

    source_fps: float
    fps: float
    overshoot: int = 1  # frames kept while decoding beyond the final count (see above)
    _next_sample: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.source_fps <= 0 or self.fps <= 0:
            raise ValueError(f"frame rates must be positive, got source {self.source_fps} and target {self.fps}")

    @property
    def description(self) -> str:
        return f"sampled at {self.fps:g} fps"

    @property
    def remedy(self) -> str:
        return "a lower fps"

    def num_samples(self, num_frames: int) -> int:
        return int(num_frames / self.source_fps * self.fps)

    def copies(self, index: int) -> int:
        """How many times decoded frame ``index`` is kept; called once per frame, in decoding order."""
        count = 0
        while round(self._next_sample / self.fps * self.source_fps) == index:
            self._next_sample += 1
            count += 1
        return count
