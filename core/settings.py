"""Settings: the only reader of ``MIMICMOTION_*`` environment variables.

Build ``Settings(...)`` directly in tests; everything else calls ``get_settings()`` once and
passes the object on. No torch import here: the gateway loads this module too.
"""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.contract import events
from core.contract.networks import IPNetwork, parse_allowed_networks
from core.contract.params import DEFAULT_MODEL, ModelName
from core.contract.queues import GPU_QUEUE, LEASE_S, QueueRoute, model_queue, parse_queue_routes
from core.contract.records import DEFAULT_JOB_RETENTION_S
from core.log_format import LogFormat

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "float16", "bfloat16"]


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected secret must not be echoed into logs by the validation error.
    model_config = SettingsConfigDict(env_prefix="MIMICMOTION_", extra="ignore", hide_input_in_errors=True)

    model_dir: Path | None = Field(
        default=None,
        description="Model directory (svd/, MimicMotion_1-1.pth, DWPose/). Unset: `up` uses a tiny model.",
    )
    device: Device = Field(default="auto", description="Torch device for the model: auto, cpu or cuda.")
    dtype: DType = Field(
        default="auto",
        description="Model dtype: auto (bfloat16 on CUDA, float32 on CPU), float32, float16, bfloat16.",
    )
    decode_chunk_size: int = Field(default=8, ge=1, description="Frames per VAE decode call (the original uses 8).")
    tf32: bool = Field(default=True, description="On CUDA, float32 matmuls and convolutions use TF32 tensor cores.")
    channels_last: bool = Field(
        default=False, description="UNet and PoseNet convolution weights in channels-last layout (CUDA speed)."
    )
    compile_unet: bool = Field(
        default=False,
        description="torch.compile the UNet's blocks; the worker compiles at start (minutes; kernels are cached "
        "on disk) with a warm-up run at the default job size.",
    )
    cfg_mode: Literal["batched", "sequential"] = Field(
        default="batched",
        description="Guidance branches in one UNet call (batched), or one call each (sequential: less GPU memory, "
        "for 16-24 GB cards).",
    )
    vae_device: Literal["same", "cpu"] = Field(
        default="same",
        description="Where the VAE runs: same (the model device) or cpu (float32; saves GPU memory, decodes slower).",
    )
    tile_devices: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Extra devices for one job's tiles, comma-separated (e.g. cuda:1,cuda:2): each holds a UNet "
        "copy and runs its share of every step; predictions are fused on the main device. Empty: one device.",
    )
    prefetch: bool = Field(
        default=True,
        description="While a job denoises, the worker fetches, decodes and pose-extracts the next queued job's "
        "inputs, so the GPU does not wait for them.",
    )
    finish_in_background: bool = Field(
        default=True,
        description="A job's result is encoded and uploaded in a thread while the worker starts the next job on "
        "the GPU; one job finishes at a time. Off: the task returns only after the upload.",
    )
    pose_cache_max_bytes: int = Field(
        default=1024**3,
        ge=0,
        description="Bound of the driving-pose cache (DWPose keypoints of driving videos, kept in storage under "
        "pose-cache/, about 3 KB per person per sampled frame); the least recently used entries are evicted "
        "beyond it. 0 turns the cache off.",
    )
    pose_cache_shared: bool = Field(
        default=False,
        description="Share driving-pose cache entries across API keys. Off: each key has its own entries, since a "
        "shared cache tells one tenant (by a faster pose stage) which videos another has processed.",
    )
    data_dir: Path = Field(
        default=Path("./.mimicmotion"),
        description="Local storage and scratch space for the embedded default stack.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis for the queue and the job store.")
    redis_sentinels: Annotated[list[tuple[str, int]], NoDecode] = Field(
        default=[],
        description="Comma-separated HOST:PORT of Redis Sentinels. Set: the job store, the Celery broker and the "
        "webhook queue reach the master that the sentinels name (redis_sentinel_master) and follow a failover "
        "without a restart; redis_url then gives only the database number and password.",
    )
    redis_sentinel_master: str = Field(
        default="mymaster", min_length=1, description="The master's name in the sentinels' configuration."
    )
    host: str = Field(default="127.0.0.1", description="Gateway bind address (`--host` overrides).")
    port: int = Field(default=8000, ge=1, le=65535, description="Gateway bind port (`--port` overrides).")
    public_url: str | None = Field(
        default=None,
        description="Base URL clients use to reach the gateway (for Location and local file URLs). "
        "Unset: http://HOST:PORT.",
    )
    http_max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest request head (request line and headers) the gateway reads; a longer one is answered "
        "400 and its connection closed, so a connection holds at most this much of an unfinished head.",
    )
    http_max_headers: int = Field(
        default=100, ge=10, description="Most header lines a request may have; more are answered 431."
    )
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time a client has to send a request's whole head, from connecting or from the first byte of "
        "its next request on a kept-alive connection; then the connection is closed (slow-header clients).",
    )
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated API keys for `Authorization: Bearer`. Empty means no auth, "
        "allowed only when the gateway binds to loopback.",
    )
    max_queued_jobs_per_key: int = Field(default=100, ge=1, description="Queued jobs one API key may have at once.")
    max_job_timeout_s: int = Field(
        default=6 * 3600,
        ge=1,
        description="Longest a job may take from submission, queue time included; also the deadline of a job "
        "without timeout_s. Past it the job fails with error.code timeout.",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Standard Webhooks signing secret, whsec_ followed by base64 of 24 to 64 random bytes. "
        "Several, comma-separated, to rotate: each delivery carries a v1 signature by every one, so receivers can "
        "move to the new secret before the old is removed. Empty: jobs may not ask for webhooks.",
    )
    webhook_timeout_s: float = Field(
        default=15.0,
        gt=0,
        le=120,
        description="Time a webhook receiver has to answer one delivery attempt: connecting, the request and the "
        "answer's status and headers together, however slowly the receiver sends them.",
    )
    webhook_max_in_flight_per_key: int = Field(
        default=2,
        ge=1,
        description="Webhook attempts one API key's jobs may have under way at once (each webhook worker has 8 "
        "delivery threads); more wait their turn, so one key's slow receivers cannot delay other keys' events.",
    )
    webhook_retry_schedule_s: Annotated[tuple[float, ...], NoDecode] = Field(
        default=events.SVIX_RETRY_SCHEDULE_S,
        description="Seconds to wait before each webhook attempt, comma-separated (Svix's schedule: immediately, "
        "5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), each with +-10 % jitter. Its length is the attempt count.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint for results. Unset: results are stored under data_dir."
    )
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint that presigned URLs are signed for, when clients reach S3 by another address.",
    )
    s3_bucket: str = Field(default="mimicmotion", description="Bucket for results when S3 is configured.")
    s3_region: str = Field(default="us-east-1", description="Region for S3 request signing.")
    output_url_ttl_s: int = Field(
        default=3600, ge=60, le=604800, description="Lifetime of presigned output URLs, minted on every read."
    )
    job_retention_s: int = Field(
        default=DEFAULT_JOB_RETENTION_S,
        ge=2 * 24 * 3600,
        description="How long a finished job's record and its webhook deliveries are kept in Redis; queued and "
        "running jobs never expire. At least 2 days: longer than the webhook retry schedule (about 27.5 h, 30 h "
        "with jitter), so a receiver that gets the final event on its last attempt can still read the job.",
    )
    url_signing_key: SecretStr = Field(
        default=SecretStr(""),
        description="Key that signs local /files URLs. Several, comma-separated, to rotate: new URLs are signed with "
        "the first, URLs signed by any still work until they expire. Empty: a random key is made and kept under "
        "data_dir.",
    )
    fetch_allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default=[],
        description="Comma-separated CIDRs that input fetching may reach although private or loopback.",
    )
    fetch_max_image_bytes: int = Field(default=20_000_000, ge=1, description="Largest input image download.")
    fetch_max_video_bytes: int = Field(default=200_000_000, ge=1, description="Largest input video download.")
    fetch_timeout_s: float = Field(default=60.0, gt=0, description="Total time allowed for one input download.")
    upload_max_bytes: int = Field(
        default=200_000_000,
        ge=1,
        description="Largest file POST /uploads accepts (multipart or direct); refused while it streams. An image "
        "upload must also fit fetch_max_image_bytes.",
    )
    upload_ttl_s: int = Field(
        default=86_400,
        ge=60,
        description="How long an upload is kept; a job that uses it keeps it at least until the job's deadline.",
    )
    upload_url_ttl_s: int = Field(
        default=3600, ge=60, le=604_800, description="Lifetime of a direct upload's signed PUT URL."
    )
    max_uploads_in_flight_per_key: int = Field(
        default=8,
        ge=1,
        description="Uploads one API key may have streaming or waiting for their direct PUT at once (429 beyond).",
    )
    max_video_frames: int = Field(
        default=2000, ge=1, description="Most driving frames a job may use after sample_stride."
    )
    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="Most pixels an input image may have, checked before it is decoded."
    )
    max_video_pixels: int = Field(
        default=4096 * 4096, ge=1, description="Most pixels a driving video frame may have (width x height)."
    )
    max_decoded_video_bytes: int = Field(
        default=4 * 2**30,
        ge=2**20,
        description="Most memory the sampled driving frames may take decoded (frames x width x height x 3 bytes), "
        "checked from the video's header before decoding and again while decoding; 4 GiB holds about 690 frames "
        "of 1080p.",
    )
    max_video_duration_s: float = Field(
        default=600.0, gt=0, description="Longest driving video, in seconds, checked before and while decoding."
    )
    lease_s: int = Field(
        default=LEASE_S,
        ge=1,
        description="A running job's lease; its worker renews it every lease_s / 4, and a job whose lease lapses "
        "is handed back by the reaper.",
    )
    reaper_interval_s: float = Field(
        default=30.0, gt=0, description="How often each worker looks for running jobs whose lease lapsed."
    )
    preview_interval_fraction: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Live previews of the denoised estimate (a small animated WebP, no VAE) every this fraction "
        "of the denoising steps (0.1: about every 10 %); 0 turns them off. The final video is the same either way.",
    )
    upload_attempts: int = Field(
        default=4, ge=1, description="Tries to store a job's results before it fails with storage_error."
    )
    upload_backoff_s: float = Field(
        default=1.0, ge=0, description="Wait before the second upload try; doubled before each further try."
    )
    checkpoint_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="While a job denoises, its latents are checkpointed to storage every this many seconds (and at a "
        "graceful stop), so a job whose worker died resumes from the last checkpoint; its encoded result is kept too, "
        "before the upload, so a job lost while uploading only uploads again. 0 turns checkpoints off.",
    )
    shutdown_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="On SIGTERM a worker keeps running its job this long; if the job is still running then, it "
        "stops at the next denoising step and goes back to the queue.",
    )
    max_job_attempts: int = Field(
        default=3,
        ge=1,
        description="Times a job is started before a lost worker fails it (a job that kills workers must not loop).",
    )
    queue_routes: Annotated[list[QueueRoute], NoDecode] = Field(
        default=[],
        description="Route jobs to GPU-class queues by resolution: comma-separated MIN_RESOLUTION=QUEUE "
        "(e.g. 0=gpu,768=gpu-80gb). Empty: every job goes to `gpu`.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: LogFormat = Field(
        default="text",
        description="Log lines: text, or json (one object a line with ts, level, logger, message, job_id, stage, "
        "worker).",
    )
    models: Annotated[list[ModelName], NoDecode] = Field(
        default=[DEFAULT_MODEL],
        description="Comma-separated models this deployment serves (mimicmotion-1.1, wan2.2-animate): the gateway "
        "accepts jobs for these and lists them at GET /models; /readyz wants a live worker for each.",
    )
    worker_model: ModelName = Field(
        default=DEFAULT_MODEL,
        description="The model a worker process loads from model_dir and serves (`mimicmotion worker --model`).",
    )
    worker_queues: Annotated[list[str], NoDecode] = Field(
        default=[GPU_QUEUE],
        description="Comma-separated queues a worker consumes (one per GPU class, e.g. gpu,gpu-80g). Default: its "
        "model's queue (gpu for mimicmotion-1.1, wan2.2-animate for wan2.2-animate).",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of a worker's Prometheus /metrics server; 0 turns it off. With --gpus N, the worker for "
        "GPU k listens on this port + k.",
    )
    otel_enabled: bool = Field(
        default=False,
        description="OpenTelemetry traces for the gateway (FastAPI) and workers (Celery); needs the [otel] extra. "
        "The exporter reads the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_RESOURCE_ATTRIBUTES).",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, secret: SecretStr) -> SecretStr:
        for one in events.split_secrets(secret.get_secret_value()):
            events.secret_key(one)  # raises ValueError naming the problem
        return secret

    @model_validator(mode="after")
    def _retention_outlasts_webhook_retries(self) -> "Settings":
        # A job's delivery records expire with it: a retry schedule longer than the retention would
        # lose the last attempts' records, and the receiver could no longer read the job.
        longest_s = sum(self.webhook_retry_schedule_s) * (1 + events.RETRY_JITTER)
        if longest_s >= self.job_retention_s:
            raise ValueError(
                f"job_retention_s ({self.job_retention_s} s) must be longer than the webhook retry schedule "
                f"with jitter ({longest_s:.0f} s): raise MIMICMOTION_JOB_RETENTION_S or shorten "
                "MIMICMOTION_WEBHOOK_RETRY_SCHEDULE_S"
            )
        return self

    # The list settings come from the environment as comma-separated text (NoDecode: not JSON) and are
    # parsed here, once; code that builds Settings may pass the typed values instead.

    @field_validator("worker_queues", mode="before")
    @classmethod
    def _parse_worker_queues(cls, value: Any) -> Any:
        if not isinstance(value, str | list | tuple):
            return value
        text = value if isinstance(value, str) else ",".join(map(str, value))
        queues = _split(text)
        if not queues:
            raise ValueError(f"MIMICMOTION_WORKER_QUEUES {text!r}: name at least one queue, e.g. gpu")
        return queues

    @field_validator("models", mode="before")
    @classmethod
    def _parse_models(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        models = list(dict.fromkeys(_split(value)))
        if not models:
            raise ValueError(f"MIMICMOTION_MODELS {value!r}: name at least one model, e.g. {DEFAULT_MODEL}")
        return models

    @model_validator(mode="after")
    def _worker_queues_of_its_model(self) -> "Settings":
        # A worker of another model consumes that model's queue unless its queues were set explicitly.
        if "worker_queues" not in self.model_fields_set:
            self.worker_queues = [model_queue(self.worker_model)]
        return self

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _parse_sentinels(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        sentinels = []
        for item in _split(value):
            host, _, port = item.rpartition(":")
            if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
                raise ValueError(f"MIMICMOTION_REDIS_SENTINELS item {item!r}: write HOST:PORT, e.g. 10.0.0.5:26379")
            sentinels.append((host.strip("[]"), int(port)))
        return sentinels

    @field_validator("tile_devices", mode="before")
    @classmethod
    def _parse_tile_devices(cls, value: Any) -> Any:
        return _split(value) if isinstance(value, str) else value

    @field_validator("queue_routes", mode="before")
    @classmethod
    def _parse_queue_routes(cls, value: Any) -> Any:
        return parse_queue_routes(value) if isinstance(value, str) else value  # ValueError names the bad pair

    @field_validator("fetch_allowed_networks", mode="before")
    @classmethod
    def _parse_allowed_networks(cls, value: Any) -> Any:
        return parse_allowed_networks(value) if isinstance(value, str) else value

    @field_validator("webhook_retry_schedule_s", mode="before")
    @classmethod
    def _parse_retry_schedule(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):  # typed delays get the same checks as the environment's text
            value = ",".join(str(delay) for delay in value)
        return events.parse_retry_schedule(value) if isinstance(value, str) else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
        # Each key becomes a SecretStr at once, so no repr, log line or error shows one.
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return tuple(SecretStr(key) for key in _split(value)) if isinstance(value, str) else value


def _split(value: str) -> list[str]:
    """``" a, b ,"`` -> ["a", "b"]: the items of a comma-separated setting, blanks dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
