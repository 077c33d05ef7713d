"""ONNX Runtime sessions for the DWPose files: created once per process, checked against what we expect.

A load failure or an unexpected signature becomes a ``ModelFilesError`` naming the file and the
expected inputs and outputs, never a traceback from inside onnxruntime. ``create_batched_session`` adds
a dynamic-batch variant of a static-batch file, built in memory and used only when it matches the file.
"""

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from core.errors import ModelFilesError
from core.pose.batching import check_batched, make_batch_dynamic

logger = logging.getLogger(__name__)

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"

_FILE = "file"  # the session of the file as it is
_BATCHED = "batched"  # the session to run batches with: a checked dynamic-batch copy, or the file's own

# (resolved path, resolved device, variant) -> session. A lock rather than lru_cache, so that two
# threads asking at once still build each session only once.
_sessions: dict[tuple[Path, str, str], ort.InferenceSession] = {}
_sessions_lock = threading.Lock()


@dataclass(frozen=True)
class TensorSpec:
    """One expected input or output.

    Attributes:
        name: the name in the released file, only used in error messages (the code reads names from
            the session, as the original does).
        shape: an int must match exactly (a dynamic dimension is accepted); a str names a free
            dimension.
    """

    name: str
    shape: tuple[int | str, ...]

    def describe(self) -> str:
        return f"{self.name} ({' x '.join(str(dim) for dim in self.shape)})"


@dataclass(frozen=True)
class SessionSpec:
    """What a model file must look like: a label for messages, then inputs and outputs in order.

    ``input_range`` is the range of the values the model is fed, used to draw the inputs that check a
    batched variant against the file.
    """

    what: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_range: tuple[float, float] = (0.0, 1.0)

    def describe(self) -> str:
        inputs = ", ".join(spec.describe() for spec in self.inputs)
        outputs = ", ".join(spec.describe() for spec in self.outputs)
        return f"{self.what} with input {inputs} and outputs {outputs}"


def create_session(path: Path, device: str, spec: SessionSpec | None = None) -> ort.InferenceSession:
    """Return the process-wide session for ``path`` on ``device`` ("auto", "cpu" or "cuda").

    Raises:
        ModelFilesError: the file is missing, is not a loadable ONNX model, or does not match ``spec``.
    """
    path, device = Path(path).resolve(), _resolve_device(device)
    with _sessions_lock:
        session = _sessions.get((path, device, _FILE))
        if session is None:
            session = _load(path, device, spec)
            _sessions[(path, device, _FILE)] = session
    if spec is not None:
        check_signature(session, spec, path)
    return session


def create_batched_session(path: Path, device: str, spec: SessionSpec) -> ort.InferenceSession:
    """Return the process-wide session to run batches of ``path`` with, on ``device``.

    A file with a dynamic batch is used as it is. For a static batch of 1, a copy of the graph with a
    dynamic batch is built in memory (``batching.make_batch_dynamic``) and checked once against the
    file (``batching.check_batched``); when the copy cannot be built or differs, the file's own session
    is returned, with one INFO line saying why. Callers tell the two apart by dim 0 of the input.

    Raises:
        ModelFilesError: as create_session; never because the batched copy failed.
    """
    single = create_session(path, device, spec)
    if not isinstance(single.get_inputs()[0].shape[0], int):
        return single
    path, device = Path(path).resolve(), _resolve_device(device)
    with _sessions_lock:
        session = _sessions.get((path, device, _BATCHED))
        if session is None:
            session = _batched_or_single(path, device, single, spec)
            _sessions[(path, device, _BATCHED)] = session
    return session


def check_signature(session: ort.InferenceSession, spec: SessionSpec, path: Path) -> None:
    """Raise ModelFilesError unless the session's inputs and outputs match ``spec``."""
    for kind, actual, expected in (
        ("input", session.get_inputs(), spec.inputs),
        ("output", session.get_outputs(), spec.outputs),
    ):
        found = ", ".join(f"{arg.name} {list(arg.shape)}" for arg in actual)
        problem = None
        if len(actual) != len(expected):
            problem = f"{len(actual)} {kind}s ({found})"
        else:
            for arg, want in zip(actual, expected, strict=True):
                if not _shape_matches(list(arg.shape), want.shape):
                    problem = f"{kind} {arg.name} of shape {list(arg.shape)}"
                    break
        if problem is not None:
            raise ModelFilesError(f"malformed {path}: found {problem}; expected {spec.describe()}")


def _resolve_device(device: str) -> str:
    if device == "auto":
        # get_available_providers() lists CUDA whenever onnxruntime-gpu is installed, and a CUDA
        # provider that fails to load logs an error line: ask only when a GPU is really there.
        try:
            import torch
        except ImportError:
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


def _batched_or_single(
    path: Path, device: str, single: ort.InferenceSession, spec: SessionSpec
) -> ort.InferenceSession:
    # Anything going wrong here only costs speed, so it is logged and the file's session is used.
    try:
        batched = _new_session(make_batch_dynamic(onnx.load(path)).SerializeToString(), device)
        problem = check_batched(single, batched, spec.input_range)
    except Exception as exc:  # onnx, onnxruntime and our rewrite each raise their own kinds
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if problem is not None:
        logger.info("%s: used with batch 1, its dynamic-batch copy is not used: %s", path.name, problem)
        return single
    logger.info("%s: dynamic-batch copy checked against the file, batches run at once", path.name)
    return batched


def _new_session(model: str | bytes, device: str) -> ort.InferenceSession:
    # The original always asked for CUDA with device_id 0 (reference §6); the worker pins its GPU
    # through CUDA_VISIBLE_DEVICES, so device 0 is the one it was given.
    providers = [_CUDA, _CPU] if device == "cuda" else [_CPU]
    return ort.InferenceSession(model, providers=providers)


def _load(path: Path, device: str, spec: SessionSpec | None) -> ort.InferenceSession:
    expected = spec.describe() if spec is not None else "an ONNX model"
    if not path.is_file():
        raise ModelFilesError(f"missing {path}: expected {expected}")
    try:
        session = _new_session(str(path), device)
    except Exception as exc:  # onnxruntime raises its own Exception subclasses (InvalidProtobuf, Fail)
        raise ModelFilesError(f"cannot load {path}: {exc}; expected {expected}") from exc
    actual = session.get_providers()
    if device == "cuda" and _CUDA not in actual:
        logger.warning("%s: CUDA was requested but onnxruntime runs it on %s", path.name, actual)
    else:
        logger.info("%s: onnxruntime providers %s", path.name, actual)
    return session


def _shape_matches(actual: list[int | str | None], expected: tuple[int | str, ...]) -> bool:
    if len(actual) != len(expected):
        return False
    # A dynamic dimension (a str or None in onnxruntime) fits any expected size.
    return all(
        not isinstance(want, int) or not isinstance(dim, int) or dim == want
        for dim, want in zip(actual, expected, strict=True)
    )
