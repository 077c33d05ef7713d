"""The backends by model name: the one place that maps a job's ``model`` to the code that runs it."""

from core.backends.base import ModelBackend
from core.contract.params import MIMICMOTION, WAN_ANIMATE


def backend_for(model: str) -> ModelBackend:
    """The backend of ``model`` (a name from core.contract.params.MODEL_NAMES), imported on first use: a
    process loads only the model it serves.

    Raises:
        KeyError: not a model this code knows.
    """
    if model == MIMICMOTION:
        from core.backends.mimicmotion import MimicMotionBackend

        return MimicMotionBackend()
    if model == WAN_ANIMATE:
        from core.backends.wan_animate.backend import WanAnimateBackend

        return WanAnimateBackend()
    raise KeyError(f"unknown model {model!r}")
