"""The ``mimicmotion`` command on the tiny model: pose and animate end to end on real files."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from cli.main import main
from core.models.files import resolve_model_files
from core.pose.draw import draw_pose
from core.pose.wholebody import WholebodyEstimator
from core.video.decode import read_image, read_video_frames
from core.video.frames import prepare_reference_image
from tests.support.media import moving_person_frames, person_image, write_garbage, write_image, write_video

if TYPE_CHECKING:
    from tests.support.client_stack import ClientStack

pytestmark = pytest.mark.usefixtures("isolated_cli_settings")

# Small but real: resolution 128 gives 192x128 frames (portrait), 11 sampled frames, 2 tiles of 8.
ANIMATE_FLAGS = [
    "--resolution", "128", "--num-inference-steps", "2", "--tile-size", "8", "--tile-overlap", "2",
    "--sample-stride", "2", "--seed", "7", "--device", "cpu",
]  # fmt: skip
# The same job through a gateway: 8 steps, so the event stream (0.5 s polls) sees it denoising.
SUBMIT_FLAGS = [
    "--resolution", "128", "--num-inference-steps", "8", "--tile-size", "8", "--tile-overlap", "2",
    "--sample-stride", "2", "--seed", "7",
]  # fmt: skip


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    image = write_image(tmp_path / "person.png", person_image(200, 150, seed=1))
    video = write_video(tmp_path / "drive.mp4", moving_person_frames(21, 96, 128, seed=2), fps=24)
    return image, video


def test_pose_writes_reference_pose_then_one_aligned_frame_per_sampled_frame(
    tiny_model_dir: Path, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    image, video = inputs
    out = tmp_path / "poses"
    args = ["pose", "--model-dir", str(tiny_model_dir), "--image", str(image), "--video", str(video)]
    assert main([*args, "--out", str(out), "--resolution", "128", "--device", "cpu"]) == 0

    frames = sorted(out.glob("*.png"))
    assert [path.name for path in frames[:2]] == ["00000.png", "00001.png"]
    assert len(frames) == 1 + 11  # reference pose + frames 0, 2, ..., 20
    first = np.asarray(Image.open(frames[0]))
    assert first.shape == (192, 128, 3)
    # Frame 0 is the reference image's own pose, drawn without rescaling.
    reference = prepare_reference_image(read_image(image), 128)
    estimator = WholebodyEstimator.from_model_files(resolve_model_files(tiny_model_dir), device="cpu")
    np.testing.assert_array_equal(first, draw_pose(estimator.estimate(reference), 192, 128))
    assert first.any()


def test_animate_writes_an_mp4_and_the_pose_frames(
    tiny_model_dir: Path, inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, video = inputs
    out, pose_out = tmp_path / "out.mp4", tmp_path / "poses"
    args = ["animate", "--model-dir", str(tiny_model_dir), "--image", str(image), "--video", str(video)]
    assert main([*args, "--out", str(out), "--pose-out", str(pose_out), *ANIMATE_FLAGS]) == 0

    result = read_video_frames(out, sample_stride=1)
    assert result.frames.shape == (11, 192, 128, 3)  # reference frame dropped
    assert result.info.codec == "h264"
    assert len(list(pose_out.glob("*.png"))) == 11  # one per output frame, as the service's pose video
    summary = capsys.readouterr().out
    assert "11 frames at 128x192, seed 7" in summary
    # Seconds per stage, one timer's keys: the reader, animate's pose, the pipeline's three, the writer.
    stages = re.findall(r"(\w+) \d+\.\d s", summary)
    assert stages == ["read", "pose", "conditioning", "denoising", "decoding", "write"]


def test_animate_to_a_directory_writes_lossless_png_frames_deterministically(
    tiny_model_dir: Path, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    image, video = inputs
    args = ["animate", "--model-dir", str(tiny_model_dir), "--image", str(image), "--video", str(video)]
    runs = []
    for name in ("a", "b"):
        assert main([*args, "--out", str(tmp_path / name), *ANIMATE_FLAGS]) == 0
        runs.append([np.asarray(Image.open(path)) for path in sorted((tmp_path / name).glob("*.png"))])
    assert len(runs[0]) == 11
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    assert runs[0][0].std() > 0


def test_bad_input_is_one_line_with_its_code_not_a_traceback(
    tiny_model_dir: Path, inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, _ = inputs
    garbage = write_garbage(tmp_path / "drive.mp4")
    args = ["pose", "--model-dir", str(tiny_model_dir), "--image", str(image), "--video", str(garbage)]
    assert main([*args, "--out", str(tmp_path / "poses")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mimicmotion: error [input_not_video]: ")
    assert "Traceback" not in error


def test_missing_model_dir_names_the_setting(inputs: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    image, video = inputs
    assert main(["pose", "--image", str(image), "--video", str(video), "--out", str(tmp_path / "p")]) == 2
    assert "MIMICMOTION_MODEL_DIR" in capsys.readouterr().err


def test_out_of_range_flag_is_rejected_naming_the_flag(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    image, video = inputs
    with pytest.raises(SystemExit, match="--tile-overlap"):
        main(["animate", "--image", str(image), "--video", str(video), "--out", "x.mp4",
              "--tile-size", "8", "--tile-overlap", "8"])  # fmt: skip


def test_animate_runs_wan_on_its_tiny_model_one_frame_per_frame_sampled_at_its_fps(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, video = inputs
    model_dir = tmp_path / "wan"
    assert main(["make-tiny-model", "--model", "wan2.2-animate", str(model_dir)]) == 0
    out, pose_out = tmp_path / "wan.mp4", tmp_path / "wan-poses"
    args = ["animate", "--model", "wan2.2-animate", "--model-dir", str(model_dir), "--image", str(image)]
    flags = ["--video", str(video), "--resolution", "480p", "--num-inference-steps", "2", "--fps", "12"]
    assert main([*args, *flags, "--segment-frame-length", "5", "--seed", "3", "--device", "cpu",
                 "--out", str(out), "--pose-out", str(pose_out)]) == 0  # fmt: skip
    # 21 frames at 24 fps sampled at 12 fps: int(21 / 24 * 12) = 10 frames, each one output frame.
    result = read_video_frames(out)
    assert result.frames.shape[0] == 10 and result.info.codec == "h264"
    assert len(list(pose_out.glob("*.png"))) == 10
    assert "10 frames at" in capsys.readouterr().out
    # A MimicMotion flag with the Wan model is refused by name, before anything loads.
    with pytest.raises(SystemExit, match=r"--tile-size: not a parameter of wan2\.2-animate"):
        main([*args, *flags, "--tile-size", "8", "--out", str(out)])


def test_console_script_makes_a_tiny_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "mimicmotion", "make-tiny-model", str(tmp_path / "m")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    resolve_model_files(tmp_path / "m")


def test_submit_uploads_local_files_follows_the_stream_and_downloads(
    client_stack: "ClientStack", inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, video = inputs
    out = tmp_path / "result.mp4"
    gateway = ["--url", client_stack.base_url, "--api-key", client_stack.fresh_key()]
    args = ["submit", *gateway, "--image", str(image), "--video", str(video), "--out", str(out), *SUBMIT_FLAGS]
    assert main(args) == 0, capsys.readouterr().err

    captured = capsys.readouterr()
    assert "succeeded: 11 frames at 128x192, seed 7 -> " in captured.out
    assert read_video_frames(out, sample_stride=1).frames.shape == (11, 192, 128, 3)
    # Off a terminal, one line per stage as the event stream reports it, in order, ending with the status.
    stages = re.findall(r"^job \S+: (\w+)", captured.err, flags=re.MULTILINE)
    assert stages[-1] == "succeeded" and "denoising" in stages, captured.err
    order = ["queued", "running", "fetching", "pose", "conditioning", "denoising", "decoding", "encoding",
             "uploading", "succeeded"]  # fmt: skip
    assert [order.index(stage) for stage in stages] == sorted(order.index(stage) for stage in stages)
    assert re.search(r": denoising \d+/8$", captured.err, flags=re.MULTILINE)  # the stage's step k/N


def test_submit_no_wait_prints_the_job_then_download_and_delete_use_its_id(
    client_stack: "ClientStack", tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = ["--url", client_stack.base_url, "--api-key", client_stack.fresh_key()]
    image, video = f"{client_stack.inputs_url}/person.png", f"{client_stack.inputs_url}/drive.mp4"
    assert main(["submit", *gateway, "--image", image, "--video", video, "--no-wait", "--resolution", "128",
                 "--num-inference-steps", "1", "--tile-size", "2", "--tile-overlap", "1"]) == 0  # fmt: skip
    job = json.loads(capsys.readouterr().out)
    assert job["status"] == "queued" and job["params"]["resolution"] == 128
    from mimicmotion_client import Client

    with Client(client_stack.base_url, gateway[3]) as client:
        assert client.wait(job["id"], timeout=120).status == "succeeded"

    out = tmp_path / "downloaded.mp4"
    assert main(["download", job["id"], "--out", str(out), *gateway]) == 0
    assert f"-> {out}" in capsys.readouterr().out and out.read_bytes()[4:8] == b"ftyp"
    assert main(["download", job["id"], "--pose", "--out", str(tmp_path / "pose.mp4"), *gateway]) == 0
    assert main(["delete", job["id"], *gateway]) == 0
    assert "its stored data was removed at 20" in capsys.readouterr().out
    assert main(["download", job["id"], "--out", str(tmp_path / "again.mp4"), *gateway]) == 2
    assert capsys.readouterr().err.startswith("mimicmotion: error [no_output]: ")


def test_submit_sends_the_model_it_is_given(client_stack: "ClientStack", capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import build_parser
    from cli.submit import submit_command

    gateway = ["--url", client_stack.base_url, "--api-key", client_stack.fresh_key()]
    image, video = f"{client_stack.inputs_url}/person.png", f"{client_stack.inputs_url}/drive.mp4"
    args = build_parser().parse_args([
        "submit", *gateway, "--image", image, "--video", video, "--no-wait", "--model", "wan2.2-animate",
        "--resolution", "480p", "--segment-frame-length", "13",
    ])  # fmt: skip
    assert submit_command(args) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["model"] == "wan2.2-animate" and job["status"] == "queued"  # no worker of it in this stack
    assert (job["params"]["resolution"], job["params"]["segment_frame_length"]) == ("480p", 13)
    from mimicmotion_client import Client

    with Client(client_stack.base_url, gateway[3]) as client:
        assert client.cancel(job["id"]).status == "canceled"


def test_client_commands_report_a_refusal_in_one_line(client_stack: "ClientStack", capsys) -> None:
    assert main(["delete", "no-such-job", "--url", client_stack.base_url, "--api-key", client_stack.fresh_key()]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mimicmotion: error [not_found]: ") and error.count("\n") == 1


def test_submit_names_an_input_that_is_neither_a_url_nor_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["submit", "--url", "http://127.0.0.1:9", "--image", "no/such/person.png", "--video", "https://x.test/v.mp4"]
    assert main(args) == 2  # refused before any request: nothing listens on port 9
    error = capsys.readouterr().err
    assert error.startswith("mimicmotion: error [invalid_input]: image ") and "no/such/person.png" in error


def test_the_cli_imports_the_client_only_in_its_client_commands() -> None:
    code = "import sys, cli.main; print(sorted(m for m in ('mimicmotion_client', 'cli.submit') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # the gateway image runs `mimicmotion serve` without the client


def test_client_commands_without_the_client_installed_say_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mimicmotion_client", None)  # as in the gateway image: not installed
    monkeypatch.delitem(sys.modules, "cli.submit", raising=False)
    import cli

    monkeypatch.delattr(cli, "submit", raising=False)  # `from cli import submit` would reuse an earlier import
    assert main(["delete", "some-job"]) == 2
    assert "needs the Python client: pip install ./client" in capsys.readouterr().err
