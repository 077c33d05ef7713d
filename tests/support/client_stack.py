"""One real stack for the Python client's tests and the CLI's: its own redis-server, the gateway under uvicorn
(``mimicmotion serve``, serving both models) and one worker on MimicMotion's tiny model, with API keys; a fresh
key for each test. No worker serves wan2.2-animate: its jobs stay queued.

Each test takes its own key, so what one test lists or counts is its own jobs only. ``gateway_env`` lets a
test start a second gateway on the same Redis and storage (one it may kill and restart).
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.redis_server import redis_server
from tests.support.service_stack import Stack, stack_env, start_stack

SERVED_MODELS = ["mimicmotion-1.1", "wan2.2-animate"]
API_KEYS = [f"client-test-key-{index}" for index in range(40)]
# The tiny model's quickest job on the 3-frame inputs, and one long enough to be caught denoising.
QUICK: dict[str, Any] = {"resolution": 128, "num_inference_steps": 2, "tile_size": 2, "tile_overlap": 1,
                         "sample_stride": 1, "fps": 8, "guidance_scale": 1.0}  # fmt: skip
SLOW: dict[str, Any] = {**QUICK, "num_inference_steps": 80}


@dataclass
class ClientStack:
    services: Stack
    inputs_url: str  # person.png, drive.mp4 (3 frames), garbage.mp4
    data_dir: Path  # local storage: results under data_dir/results/<key>
    _keys: Iterator[str]

    @property
    def base_url(self) -> str:
        return self.services.base_url

    def fresh_key(self) -> str:
        """An API key no other test has used."""
        return next(self._keys)

    def logs(self) -> str:
        return self.services.logs()


@contextmanager
def client_stack(tmp_path: Path, tiny_model_dir: Path, inputs_url: str) -> Iterator[ClientStack]:
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp_path))
        env = stack_env(
            redis_url=redis_url, data_dir=tmp_path / "data", model_dir=tiny_model_dir,
            api_keys=",".join(API_KEYS), fetch_allowed_networks="127.0.0.0/8", models=",".join(SERVED_MODELS),
        )  # fmt: skip
        services = start_stack(stack, env, tmp_path, workers=["w0"])
        yield ClientStack(services, inputs_url, tmp_path / "data", iter(API_KEYS))
