"""Settings: the only reader of ``MIMICMOTION_*`` environment variables.

Build ``Settings(...)`` directly in tests; everything else calls ``get_settings()`` once and
passes the object on. No torch import here: the gateway loads this module too.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "float16", "bfloat16"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIMICMOTION_", extra="ignore")

    model_dir: Path | None = Field(
        default=None,
        description="Model directory (svd/, MimicMotion_1-1.pth, DWPose/). Unset: `up` uses a tiny model.",
    )
    device: Device = Field(default="auto", description="Torch device for the model: auto, cpu or cuda.")
    dtype: DType = Field(
        default="auto",
        description="Model dtype: auto (bfloat16 on CUDA, float32 on CPU), float32, float16, bfloat16.",
    )
    decode_chunk_size: int = Field(
        default=8, ge=1, description="Frames per VAE decode call (the original uses 8)."
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis for the queue and job store.")
    host: str = Field(default="127.0.0.1", description="Gateway bind address (`--host` overrides).")
    port: int = Field(default=8000, ge=1, le=65535, description="Gateway bind port (`--port` overrides).")
    data_dir: Path = Field(
        default=Path("./.mimicmotion"),
        description="Local storage and scratch space for the embedded default stack.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint. Unset: results are stored under data_dir."
    )
    s3_bucket: str = Field(default="mimicmotion", description="Bucket for results when S3 is configured.")
    api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated API keys. Empty means no auth, allowed only on a loopback bind.",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr(""), description="Standard Webhooks signing secret (`whsec_...`)."
    )
    fetch_allowed_networks: str = Field(
        default="",
        description="Comma-separated CIDRs that input fetching may reach although private or loopback.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
