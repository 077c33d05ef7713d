"""Log lines as text or JSON, each carrying the context it was written in (job id, stage, worker).

The context lives in a contextvar: ``run_job`` binds ``job_id`` for the length of a job
(``job_log_context``), the worker binds its name once at start, and a filter copies the current
context onto every record, so a JSON line written deep inside the pipeline still names its job.
Standard library only: the gateway and the worker both load this module.
"""

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, TypeVar

LogFormat = Literal["text", "json"]
CONTEXT_FIELDS = ("job_id", "stage", "worker")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"

_context: ContextVar[dict[str, str]] = ContextVar("mimicmotion_log_context", default={})  # noqa: B039 (never mutated)

P = ParamSpec("P")
R = TypeVar("R")


def bind_log_context(**fields: str | None) -> None:
    """Add fields to the current context until it is reset (``None`` removes a field)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    for name in (k for k, v in fields.items() if v is None):
        merged.pop(name, None)
    _context.set(merged)


def current_log_context() -> dict[str, str]:
    return dict(_context.get())


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """The fields apply inside the block only; what was bound before comes back after it."""
    token = _context.set(dict(_context.get()))
    try:
        bind_log_context(**fields)
        yield
    finally:
        _context.reset(token)


def job_log_context(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator for ``f(job_id, ...)``: every line logged while it runs carries that job id.

    The job's fields (the stage too) are dropped when it returns, so Celery's own lines about the
    next message do not inherit a finished job's id.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        job_id = args[0] if args else kwargs.get("job_id")
        with log_context(job_id=str(job_id), stage=None):
            return func(*args, **kwargs)

    return wrapper


class ContextFilter(logging.Filter):
    """Copies the current context onto each record (``record.job_id`` etc., and ``record.context``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        shown = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if getattr(record, k, None))
        record.context = f" [{shown}]" if shown else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the context fields, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, log_format: LogFormat = "text", *, stream: Any = None) -> logging.Handler:
    """Replace the root logger's handlers with one that writes ``log_format`` lines to stderr (or ``stream``)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
