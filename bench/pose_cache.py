"""The pose stage of a job cold (no cache), on a miss (detect and store) and on a hit (the driving poses cached).

The stage as a worker runs it (``core.execution.poses.prepare_job_poses``), against a redis-server of its own
and local storage in a temporary folder. The tiny model's DWPose files by default; the real ones with
``MIMICMOTION_MODEL_DIR`` (add ``--device cuda`` on a GPU machine). A hit still detects the reference image
and aligns and draws every frame (drawing goes through a 2160-short-side canvas per frame), so the saving is
the driving frames' detection.

    .venv/bin/python -m bench.pose_cache
    MIMICMOTION_MODEL_DIR=/models .venv/bin/python -m bench.pose_cache --device cuda --frames 120
"""

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from core.animate import PosedInputs, prepare_poses
from core.contract.params import JobParams
from core.contract.records import Job
from core.execution.poses import DrivingPoseCache, JobPoses, estimator_identity, prepare_job_poses
from core.jobs.keys import KeyedRedis
from core.jobs.pose_cache import PoseCacheStore
from core.models.files import resolve_model_files
from core.models.tiny import make_tiny_model
from core.pose.records import Pose
from core.pose.wholebody import WholebodyEstimator
from core.settings import Settings
from core.storage import LocalStorage
from core.video.decode import read_image, read_video_frames
from tests.support.media import moving_person_frames, person_image, write_image, write_video
from tests.support.redis_server import redis_server


class PoseStage:
    """The ``LoadedModel.prepare`` of MimicMotion (core.animate.Animator) on the estimator alone."""

    def __init__(self, estimator: WholebodyEstimator) -> None:
        self.estimator = estimator

    def prepare(
        self, image: np.ndarray, frames: np.ndarray, params: JobParams, *, driving_poses: list[Pose] | None = None
    ) -> PosedInputs:
        return prepare_poses(image, frames, params, self.estimator, driving_poses=driving_poses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--frames", type=int, default=48, help="frames of the driving video (sampled at stride 2)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=288)
    parser.add_argument("--resolution", type=int, default=576)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pose-cache-") as tmp_name, redis_server(Path(tmp_name)) as url:
        tmp = Path(tmp_name)
        model_dir = os.environ.get("MIMICMOTION_MODEL_DIR")
        if model_dir is None:
            make_tiny_model(tmp / "tiny-model")
            model_dir = str(tmp / "tiny-model")
        files = resolve_model_files(model_dir)
        estimator = WholebodyEstimator.from_model_files(files, device=args.device)
        write_image(tmp / "person.png", person_image(768, 512, seed=1))
        write_video(tmp / "drive.mp4", moving_person_frames(args.frames, args.height, args.width, seed=2), fps=24)
        params = JobParams(resolution=args.resolution, sample_stride=2)
        job = Job(id="bench", owner="bench", image_url="https://example.test/p", video_url="https://example.test/v",
                  params=params)  # fmt: skip
        image = read_image(tmp / "person.png")
        video = read_video_frames(tmp / "drive.mp4", sample_stride=params.sample_stride)
        identity = estimator_identity(files, estimator)  # once per worker process: reads both DWPose files
        store = PoseCacheStore(
            KeyedRedis.from_url(url), LocalStorage(Settings(data_dir=tmp / "data")), max_bytes=2**30,
            scratch=tmp / "scratch",
        )  # fmt: skip
        cache = DrivingPoseCache(store, estimator_identity=identity)
        stage = PoseStage(estimator)  # MimicMotion's pose stage without loading its generation models

        def pose_s(poses: JobPoses) -> float:
            return poses.posed.timings["pose"]

        prepare_job_poses(job, image, video, tmp / "drive.mp4", stage, None)  # warm the sessions
        cold = [pose_s(prepare_job_poses(job, image, video, tmp / "drive.mp4", stage, None))
                for _ in range(args.repeats)]  # fmt: skip
        miss = prepare_job_poses(job, image, video, tmp / "drive.mp4", stage, cache)
        hits = [prepare_job_poses(job, image, video, tmp / "drive.mp4", stage, cache) for _ in range(args.repeats)]
        assert miss.cache is not None and miss.cache.driving_pose == "miss"
        assert all(hit.cache is not None and hit.cache.driving_pose == "hit" for hit in hits)
        [name] = store.names()
        entry_bytes = store.total_bytes()
        num_samples = video.frames.shape[0]
        cold_s, hit_s = statistics.median(cold), statistics.median(pose_s(hit) for hit in hits)
        print(f"DWPose from {files.root}{' (tiny)' if files.is_tiny else ''} on {args.device}; "
              f"{num_samples} sampled frames of {video.frames.shape[2]}x{video.frames.shape[1]}, "
              f"resolution {args.resolution}")  # fmt: skip
        print(f"pose stage cold (no cache)  {cold_s:8.3f} s  (median of {args.repeats})")
        print(f"pose stage miss (+ store)   {pose_s(miss):8.3f} s")
        print(f"pose stage hit              {hit_s:8.3f} s  (median of {args.repeats}): "
              f"{cold_s - hit_s:.3f} s saved, {100 * (1 - hit_s / cold_s):.0f} % of the stage")  # fmt: skip
        print(f"cache entry                 {entry_bytes} bytes, {entry_bytes / num_samples:.0f} bytes per frame "
              f"({name.split('/')[0]}/...)")  # fmt: skip


if __name__ == "__main__":
    main()
