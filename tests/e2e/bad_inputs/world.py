"""The bad-input stack: the hostile input server on 127.0.0.2, canaries, the gateway and one worker, with every
job case submitted up front."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tests.e2e.bad_inputs.job_cases import API_KEY, JOB_CASES, LIMITS, PARAMS
from tests.support import media
from tests.support.hostile_server import Canary, canary_server, input_server
from tests.support.redis_server import free_port, redis_server
from tests.support.service_stack import Stack, stack_env, start_stack


@dataclass
class World:
    stack: Stack
    client: httpx.Client
    canaries: list[Canary]
    job_ids: dict[str, str]
    worker_pid: int
    inputs_url: str  # the hostile input server, serving the files under /files/NAME


def _write_inputs(directory: Path) -> None:
    media.write_image(directory / "person.png", media.person_image(200, 150, seed=1))
    media.write_video(directory / "drive.mp4", media.moving_person_frames(3, 96, 128, seed=2), fps=24)
    media.write_image(directory / "flat.png", media.flat_image(200, 150, 128))
    # Image modes (issue 19): the person in 16-bit grey, palette and CMYK, and a float TIFF.
    person = media.person_image(200, 150, seed=1)
    grey = np.asarray(Image.fromarray(person).convert("L"))
    (directory / "person_grey16.png").write_bytes(media.png16_bytes(media.to_sixteen_bit(grey)))
    (directory / "person_palette.png").write_bytes(media.image_bytes_in_mode(person, "P", "PNG"))
    (directory / "person_cmyk.jpg").write_bytes(media.image_bytes_in_mode(person, "CMYK", "JPEG"))
    Image.fromarray(grey.astype(np.float32) / 255).save(directory / "person_float.tiff")
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # ~360 kB, incompressible
    media.write_image(directory / "noise.png", noise)
    media.write_garbage(directory / "garbage.png")
    media.write_garbage(directory / "garbage.mp4")
    media.write_empty(directory / "empty.png")
    media.write_empty(directory / "empty.mp4")
    (directory / "truncated.png").write_bytes(media.truncated_png_bytes())
    (directory / "bomb.png").write_bytes(media.png_bomb_bytes(2000, 2000))  # 4 Mpx in a few kB
    (directory / "page.html").write_text("<!doctype html><title>not an image</title>")
    media.write_zero_frame_video(directory / "zero_frames.avi")
    media.write_truncated_video(directory / "truncated.mp4", faststart=False)
    media.write_audio_only(directory / "audio.wav")
    media.write_video(directory / "long.mp4", np.zeros((100, 48, 64, 3), dtype=np.uint8), fps=25)  # 4 s
    media.write_video(directory / "wide.mp4", np.zeros((2, 512, 704, 3), dtype=np.uint8), fps=25)
    # Decoded-size bombs (issue 19): kilobytes of H.264, 53 MiB (by its header) and 62 MiB (no count) decoded.
    media.write_flat_video(directory / "bomb_by_header.mp4", 60, 480, 640)
    media.write_flat_video(directory / "bomb_without_count.h264", 70, 480, 640, container="h264")


def _urls(template: str, inputs: str, port: int, closed_port: int) -> str:
    return template.format(inputs=inputs, port=port, closed_port=closed_port)


@contextmanager
def bad_input_world(root: Path, tiny_model_dir: Path) -> Iterator[World]:
    """Start the stack under ``root`` and submit every job case; stop it all when the block ends."""
    (root / "inputs").mkdir()
    _write_inputs(root / "inputs")
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(root))
        inputs = stack.enter_context(input_server(root / "inputs", host="127.0.0.2"))
        port = int(inputs.rsplit(":", 1)[1])
        canaries = [
            stack.enter_context(canary_server("127.0.0.1", port)),
            stack.enter_context(canary_server("::1", port)),
        ]
        env = stack_env(redis_url=redis_url, data_dir=root / "data", model_dir=tiny_model_dir, **LIMITS)
        services = start_stack(stack, env, root, workers=["w0"])
        client = stack.enter_context(
            httpx.Client(
                base_url=services.base_url, trust_env=False, timeout=10, headers={"Authorization": f"Bearer {API_KEY}"}
            )
        )
        worker_pid = int(services.workers["w0"].process.pid)
        closed_port = free_port()
        job_ids: dict[str, str] = {}
        for case in JOB_CASES:
            body = {
                "image_url": _urls(case.image_url, inputs, port, closed_port),
                "video_url": _urls(case.video_url, inputs, port, closed_port),
                "params": PARAMS,
            }
            response = client.post("/jobs", json=body)
            assert response.status_code == 202, f"{case.id}: {response.status_code} {response.text}"
            job_ids[case.id] = response.json()["id"]
        yield World(services, client, canaries, job_ids, worker_pid, inputs)
