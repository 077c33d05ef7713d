"""Optional OpenTelemetry traces: FastAPI (gateway) and Celery (worker) spans sent over OTLP.

Off unless ``MIMICMOTION_OTEL_ENABLED``; the packages come with the ``[otel]`` extra, never with the
core dependencies. The exporter reads the standard ``OTEL_*`` variables itself (endpoint, headers,
resource attributes), so only the on/off switch goes through Settings. The worker runs the solo pool, so
the span processor's thread is started in the process that runs the tasks (no fork after it).
"""

import logging

from core.errors import ConfigurationError
from core.settings import Settings

logger = logging.getLogger(__name__)

OTEL_EXTRA_HINT = "pip install 'mimicmotion-service[otel]'"


def setup_tracing(settings: Settings, service_name: str) -> bool:
    """Install a tracer provider and instrument FastAPI and Celery; False (and nothing done) when disabled.

    Raises:
        ConfigurationError: tracing is enabled but the OpenTelemetry packages are missing.
    """
    if not settings.otel_enabled:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigurationError(
            f"MIMICMOTION_OTEL_ENABLED is on but OpenTelemetry is not installed ({exc.name} is missing): "
            f"{OTEL_EXTRA_HINT}"
        ) from exc
    # The service name names the role; OTEL_RESOURCE_ATTRIBUTES adds the rest (deployment, host).
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor().instrument()  # patches FastAPI before the gateway builds its app
    CeleryInstrumentor().instrument()  # the worker's tasks and the gateway's send_task both get spans
    logger.info("OpenTelemetry traces on for %s", service_name)
    return True
