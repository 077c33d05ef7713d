# syntax=docker/dockerfile:1
# The gateway (and the webhook worker): FastAPI + the Celery client, no torch, no CUDA.
# Build from the repository root: docker build -f docker/gateway.Dockerfile -t mimicmotion-gateway .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY service ./service
COPY worker ./worker
COPY cli ./cli
# The core dependencies only: pyproject keeps torch and the model stack in the [worker] extra.
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/python -c "import service.app, importlib.util as u; assert u.find_spec('torch') is None"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 mimicmotion \
    && useradd --system --uid 10001 --gid mimicmotion --create-home --home-dir /home/mimicmotion mimicmotion \
    && mkdir -p /data && chown mimicmotion:mimicmotion /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MIMICMOTION_HOST=0.0.0.0 \
    MIMICMOTION_PORT=8000 \
    MIMICMOTION_DATA_DIR=/data \
    MIMICMOTION_LOG_FORMAT=json
USER 10001:10001
WORKDIR /home/mimicmotion
EXPOSE 8000
# No curl in a slim image: the standard library asks /healthz (liveness; /readyz also needs a worker).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["mimicmotion", "serve"]
