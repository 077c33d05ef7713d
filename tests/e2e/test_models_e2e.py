"""Two models behind one API on a real stack: the gateway serves both, one worker process per model.

A Wan2.2-Animate job waits in its own queue while only a MimicMotion worker runs (which finishes its own job
meanwhile), /readyz and GET /models say which model has no worker, params of one model sent for the other are
a 422 naming the field and the model; once a `mimicmotion worker --model wan2.2-animate` starts, the waiting
job succeeds with one frame per driving frame sampled at its fps.
"""

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from core.video.decode import read_video_frames
from tests.support.input_files import InputServer
from tests.support.processes import wait_for
from tests.support.redis_server import redis_server
from tests.support.service_stack import stack_env, start_stack, wait_for_terminal

pytestmark = pytest.mark.e2e

MIMICMOTION_PARAMS = {"resolution": 128, "num_inference_steps": 2, "tile_size": 8, "tile_overlap": 2, "fps": 8}
# The tiny model renders 480p at its own small area (32x32 pixels' worth). The 12-frame drive.mp4 at 24 fps
# sampled at 12 fps gives 6 frames: with 5-frame segments carrying 1 frame over, 2 segments of 2 steps.
WAN_PARAMS = {"resolution": "480p", "num_inference_steps": 2, "segment_frame_length": 5, "fps": 12}
NUM_WAN_FRAMES = 6


def test_each_model_has_its_queue_its_worker_and_its_params(
    tmp_path: Path, tiny_model_dir: Path, tiny_wan_model_dir: Path, input_servers: Callable[[int], InputServer]
) -> None:
    inputs_url = input_servers(12).url
    inputs = {"image_url": f"{inputs_url}/person.png", "video_url": f"{inputs_url}/drive.mp4"}
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp_path))
        env = stack_env(
            redis_url=redis_url, data_dir=tmp_path / "data", model_dir=tiny_model_dir,
            models="mimicmotion-1.1,wan2.2-animate", fetch_allowed_networks="127.0.0.0/8",
        )  # fmt: skip
        services = start_stack(stack, env, tmp_path, workers=["mm"])
        client = stack.enter_context(httpx.Client(base_url=services.base_url, trust_env=False, timeout=30))

        # 1. Only MimicMotion has a worker: /readyz and GET /models say so.
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["missing"] == ["worker for model wan2.2-animate"]
        models = {model["name"]: model for model in client.get("/models").json()["data"]}
        assert {name: model["live_workers"] for name, model in models.items()} == {
            "mimicmotion-1.1": 1, "wan2.2-animate": 0,
        }  # fmt: skip
        assert models["wan2.2-animate"]["queue"] == "wan2.2-animate"
        assert "segment_frame_length" in models["wan2.2-animate"]["params_schema"]["properties"]
        assert "tile_size" not in models["wan2.2-animate"]["params_schema"]["properties"]

        # 2. One model's params sent for the other: a 422 naming the field and the model.
        refused = client.post("/jobs", json={**inputs, "model": "wan2.2-animate", "params": {"tile_size": 8}})
        assert refused.status_code == 422
        assert refused.json()["error"]["details"][0]["field"] == "params.tile_size"
        assert "(model wan2.2-animate)" in refused.json()["error"]["message"]
        refused = client.post("/jobs", json={**inputs, "params": {"segment_frame_length": 13}})
        assert refused.status_code == 422
        assert "params.segment_frame_length" in refused.json()["error"]["message"]
        assert "(model mimicmotion-1.1)" in refused.json()["error"]["message"]

        # 3. The Wan job waits in its queue while the MimicMotion worker runs the MimicMotion job to the end.
        wan = client.post("/jobs", json={**inputs, "model": "wan2.2-animate", "params": {**WAN_PARAMS, "seed": 1}})
        assert wan.status_code == 202, wan.text
        assert (wan.json()["model"], wan.json()["params"]["prompt"]) == ("wan2.2-animate", "视频中的人在做动作")
        mm = client.post("/jobs", json={**inputs, "params": {**MIMICMOTION_PARAMS, "seed": 2}})
        assert mm.status_code == 202, mm.text
        assert mm.json()["model"] == "mimicmotion-1.1"
        done = wait_for_terminal(client, [mm.json()["id"]], timeout_s=120, stack=services)
        assert done[mm.json()["id"]]["status"] == "succeeded"
        waiting = client.get(f"/jobs/{wan.json()['id']}").json()
        assert (waiting["status"], waiting["attempts"]) == ("queued", 0)

        # 4. A worker of the second model takes it from its queue.
        services.start_worker("wan", model="wan2.2-animate", model_dir=tiny_wan_model_dir)
        assert client.get("/readyz").status_code == 200
        job = wait_for_terminal(client, [wan.json()["id"]], timeout_s=180, stack=services)[wan.json()["id"]]
        assert job["status"] == "succeeded", job.get("error")
        assert job["output"]["num_frames"] == NUM_WAN_FRAMES
        assert job["output"]["fps"] == 12
        assert set(job["timings"]) >= {"fetching", "pose", "denoising", "encoding", "uploading"}
        assert job["cache"] == {"driving_pose": "miss"}
        assert job["timings"]["denoising"] > 0 and job["resumed_from_step"] is None
        video = client.get(job["output"]["video_url"])
        assert video.status_code == 200
        (tmp_path / "wan.mp4").write_bytes(video.content)
        decoded = read_video_frames(tmp_path / "wan.mp4")
        assert decoded.frames.shape[0] == NUM_WAN_FRAMES
        models = {model["name"]: model["live_workers"] for model in client.get("/models").json()["data"]}
        assert models == {"mimicmotion-1.1": 1, "wan2.2-animate": 1}
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout_s=5, message="both workers live")
