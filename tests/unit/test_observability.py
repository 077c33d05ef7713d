"""Log lines (text and JSON, with the job context) and the optional OpenTelemetry switch."""

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from cli.tracing import OTEL_EXTRA_HINT, setup_tracing
from core.errors import ConfigurationError
from core.log_format import bind_log_context, configure_logging, job_log_context, log_context
from core.settings import Settings


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """A stream for configure_logging; the root logger's handlers and level are restored afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def _lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_job_log_context_puts_the_job_id_and_stage_on_every_json_line(log_stream: io.StringIO) -> None:
    stream = log_stream
    configure_logging("INFO", "json", stream=stream)

    @job_log_context
    def run(job_id: str) -> None:
        logging.getLogger("a").info("claimed")
        bind_log_context(stage="denoising")
        logging.getLogger("b.c").warning("step %d", 3)

    with log_context(worker="gpu0@h"):
        run("job-1")
        logging.getLogger("a").info("between jobs")
    first, second, after = _lines(stream)
    assert first["job_id"] == "job-1" and first["worker"] == "gpu0@h" and "stage" not in first
    assert second == {**second, "job_id": "job-1", "stage": "denoising", "message": "step 3", "level": "WARNING"}
    assert "job_id" not in after and "stage" not in after and after["worker"] == "gpu0@h"


def test_json_lines_carry_exceptions_and_text_lines_show_the_context(log_stream: io.StringIO) -> None:
    stream = log_stream
    configure_logging("INFO", "json", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    assert "ValueError: boom" in _lines(stream)[0]["exc"]

    text = io.StringIO()
    configure_logging("INFO", "text", stream=text)
    with log_context(job_id="j2"):
        logging.getLogger("x").info("hello")
    assert text.getvalue().rstrip().endswith("INFO x [job_id=j2]: hello")


def test_log_format_setting_accepts_text_and_json_only() -> None:
    assert Settings(log_format="json").log_format == "json"
    with pytest.raises(ValueError, match="log_format"):
        Settings(log_format="xml")  # type: ignore[arg-type]


def test_tracing_disabled_does_nothing() -> None:
    loaded = set(sys.modules)
    assert setup_tracing(Settings(), "mimicmotion-gateway") is False
    assert not {name for name in set(sys.modules) - loaded if name.startswith("opentelemetry")}


def test_tracing_enabled_without_the_packages_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as it does where the [otel] extra is not installed.
    for name in ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigurationError) as caught:
        setup_tracing(Settings(otel_enabled=True), "mimicmotion-worker")
    assert OTEL_EXTRA_HINT in caught.value.message and "MIMICMOTION_OTEL_ENABLED" in caught.value.message
