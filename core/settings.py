"""Settings: the only reader of ``MIMICMOTION_*`` environment variables.

Build ``Settings(...)`` directly in tests; everything else calls ``get_settings()`` once and
passes the object on. No torch import here: the gateway loads this module too.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
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
    data_dir: Path = Field(
        default=Path("./.mimicmotion"),
        description="Local storage and scratch space for the embedded default stack.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
