"""create_app(settings): the FastAPI gateway. No module-level app: uvicorn runs it with --factory.

Torch-free by construction: it imports core's settings, errors, jobs and storage only, and sends
tasks by name without importing ``worker/``.
"""

from fastapi import FastAPI
from fastapi.routing import APIRoute

from core.contract.queues import GPU_QUEUE, model_queue
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import Storage, create_storage
from service.auth import ApiKeys, check_bind_is_safe
from service.body_limit import BodySizeLimitMiddleware
from service.errors import install_error_handlers
from service.http_limits import HeaderLimitsMiddleware
from service.json_depth import JsonDepthLimitMiddleware
from service.metrics import RequestMetricsMiddleware, create_registry
from service.queue import TaskSender, create_task_sender
from service.routes import files, health, jobs, metrics, models, playground, uploads

API_VERSION = "1.0.0"
SSE_POLL_S = 0.5  # how often an event stream re-reads its job; tests lower it through app.state


def _operation_id(route: APIRoute) -> str:
    return route.name  # handler names (create_job, get_job, ...) read well in generated clients


def create_app(
    settings: Settings,
    *,
    store: JobStore | None = None,
    storage: Storage | None = None,
    task_sender: TaskSender | None = None,
) -> FastAPI:
    """Build the gateway; the keyword arguments replace the clients built from ``settings`` (tests).

    Raises:
        ConfigurationError: no API keys are configured and the bind address is not loopback.
    """
    api_keys = ApiKeys.from_settings(settings)
    check_bind_is_safe(settings, api_keys)
    app = FastAPI(
        title="MimicMotion",
        version=API_VERSION,
        description="Pose-guided human animation as an asynchronous job API.",
        generate_unique_id_function=_operation_id,
        # Starlette's slash redirect builds an absolute URL from the request's Host header, which a
        # client controls (issue 19); a path with a stray slash is a plain 404 instead.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.api_keys = api_keys
    app.state.store = (
        store if store is not None else JobStore.from_settings(settings)
    )
    app.state.storage = storage if storage is not None else create_storage(settings)
    app.state.task_sender = task_sender if task_sender is not None else create_task_sender(settings)
    app.state.sse_poll_s = SSE_POLL_S
    routed_queues = (
        GPU_QUEUE, *(route.queue for route in settings.queue_routes),
        *(model_queue(model) for model in settings.models if model_queue(model) != GPU_QUEUE),
    )  # fmt: skip
    app.state.metrics_registry, http_metrics = create_registry(app.state.store, routed_queues)
    app.add_middleware(JsonDepthLimitMiddleware)  # inside the size cap, which bounds what it reads
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(
        HeaderLimitsMiddleware, max_headers=settings.http_max_headers, max_header_bytes=settings.http_max_header_bytes
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=http_metrics)  # outermost: also counts the 413s
    install_error_handlers(app)
    routers = (jobs, uploads, models, files, health, metrics, playground)
    for router in (module.router for module in routers):
        app.include_router(router)
    return app
