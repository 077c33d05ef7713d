"""DWPose on onnxruntime's CUDA provider with no silent fallback to the CPU (core/pose/onnx_session.py).

A CUDA provider that fails to load (a CUDA or cuDNN mismatch) leaves a session on the CPU with only
onnxruntime's own stderr lines; the session's providers and our INFO line are where it shows.
"""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.models.files import resolve_model_files
from core.pose.onnx_session import create_session
from core.pose.wholebody import WholebodyEstimator
from tests.support.gpu import CUDA_ONLY

pytestmark = CUDA_ONLY

CUDA_FIRST = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_dwpose_sessions_run_on_the_cuda_provider(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core.pose.onnx_session")
    # A fresh copy: sessions are shared per path within the process, and only a new one logs its providers.
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    files = resolve_model_files(model_dir)
    estimator = WholebodyEstimator.from_model_files(files, device="cuda")
    sessions = {
        files.detector.name: create_session(files.detector, "cuda"),
        files.pose_model.name: create_session(files.pose_model, "cuda"),
        "detector, batched": estimator.detector.session,
        "pose model, batched": estimator.pose_session,
    }
    assert {name: session.get_providers() for name, session in sessions.items()} == dict.fromkeys(sessions, CUDA_FIRST)
    for path in (files.detector, files.pose_model):
        assert f"{path.name}: onnxruntime providers {CUDA_FIRST}" in caplog.text
    # "CUDA was requested but onnxruntime runs it on [...]" is the fallback's WARNING.
    session_records = [record for record in caplog.records if record.name == "core.pose.onnx_session"]
    assert [record.getMessage() for record in session_records if record.levelno >= logging.WARNING] == []
    # The tiny detector finds one person on any textured image; the pose model runs on its crop.
    image = np.random.default_rng(0).integers(0, 256, size=(120, 90, 3), dtype=np.uint8)
    pose = estimator.estimate(image)
    assert pose.num_persons >= 1 and np.isfinite(pose.body).all()
