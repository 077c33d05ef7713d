# syntax=docker/dockerfile:1
# The GPU worker: one Celery worker per GPU with the models warm. Weights are NOT in the image and
# are never downloaded at start: mount the model directory read-only at /models (README, "Docker Compose").
# Build from the repository root: docker build -f docker/worker.Dockerfile -t mimicmotion-worker .
#
# CUDA 13.0 with cuDNN 9: PyPI's torch 2.13.0 for Linux is the CUDA 13.0 build (its wheel requires
# cuda-toolkit 13.0.3 and nvidia-cudnn-cu13 9.20), and onnxruntime-gpu 1.31.1 needs CUDA 13.* and
# cuDNN 9.*. The host needs an NVIDIA driver for CUDA 13 (>= 580) and the NVIDIA Container Toolkit.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS python
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu 24.04 ships Python 3.12; the project supports 3.11 only, which deadsnakes builds for it.
# The base image (pinned above) fixes the distribution; the PPA's python3.11 follows 3.11 patch releases.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates gpg-agent software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && apt-get purge -y --auto-remove gpg-agent software-properties-common \
    && rm -rf /var/lib/apt/lists/*

FROM python AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.11 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY service ./service
COPY worker ./worker
COPY cli ./cli
# torch==2.13.0 (pinned in the [worker] extra) resolves to the CUDA 13.0 wheel on PyPI; the CPU
# wheel the Makefile installs comes from a local mirror and never reaches this image.
RUN /opt/venv/bin/pip install --no-cache-dir '.[worker]' \
    && /opt/venv/bin/python -c "import torch; assert torch.version.cuda and torch.version.cuda.startswith('13.'), torch.version.cuda"

FROM python
RUN groupadd --system --gid 10001 mimicmotion \
    && useradd --system --uid 10001 --gid mimicmotion --create-home --home-dir /home/mimicmotion mimicmotion \
    && mkdir -p /data /models /cache && chown mimicmotion:mimicmotion /data /cache
COPY --from=build /opt/venv /opt/venv
# HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE: loading reads /models only; a missing file fails, never downloads.
# /cache: torch.compile's kernels (MIMICMOTION_COMPILE_UNET); on a volume, a restarted worker skips recompiling.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MIMICMOTION_MODEL_DIR=/models \
    MIMICMOTION_DATA_DIR=/data \
    MIMICMOTION_DEVICE=cuda \
    MIMICMOTION_LOG_FORMAT=json \
    MIMICMOTION_WORKER_METRICS_PORT=9100 \
    TORCHINDUCTOR_CACHE_DIR=/cache/torch/inductor \
    TRITON_CACHE_DIR=/cache/torch/triton
USER 10001:10001
WORKDIR /home/mimicmotion
EXPOSE 9100
# Healthy once this container's worker has loaded its models and writes its heartbeat to Redis;
# loading real weights takes minutes, hence the long start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 CMD ["python", "-m", "worker.health"]
# SIGTERM is a Celery warm shutdown: the running job finishes before the process exits.
STOPSIGNAL SIGTERM
CMD ["mimicmotion", "worker"]
