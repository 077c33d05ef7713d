"""The playground in a real browser (headless Debian chromium) against a real gateway and a worker on
the tiny model: a job from dropped files to playable videos, cancel, a wrong key, user strings kept as
text, the model picker and its forms, and the page's Content-Security-Policy.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.playground_page import API_KEY, Playground
from tests.support.fault_stack import QUICK, FaultStack, denoising
from tests.support.processes import wait_for
from tests.support.service_stack import wait_for_terminal

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_TO = "PLAYGROUND_SCREENSHOT_TO"
STAGES = ["fetching", "pose", "conditioning", "denoising", "decoding", "encoding", "uploading"]
# Enough denoising steps for the page to watch the bar move (the stream is polled every 0.5 s).
WATCHED = {**QUICK, "num_inference_steps": 30}
LONG = {**QUICK, "num_inference_steps": 100}  # still denoising when the test presses cancel


def authorized(services: FaultStack) -> httpx.Client:
    services.client.headers["Authorization"] = f"Bearer {API_KEY}"
    return services.client


def test_a_job_from_dropped_files_plays_its_pose_and_result_videos_and_lands_in_the_history(
    playground: Playground, services: FaultStack, inputs: Path, tmp_path: Path
) -> None:
    playground.open()
    playground.enter_key(API_KEY)
    playground.choose_image(inputs / "person.png")
    playground.drop_video(inputs / "drive.mp4")
    # Both inputs show at once, from object URLs, before anything is uploaded.
    # Predicates as functions: a bare expression that is not true at once is polled through eval(), which the
    # page's CSP (no 'unsafe-eval') refuses.
    playground.page.wait_for_function("() => document.querySelector('#image-local').naturalWidth > 0")
    playground.page.wait_for_function("() => document.querySelector('#video-local').readyState >= 1")
    assert playground.page.locator("#video-name").inner_text().startswith("drive.mp4")
    playground.set_params({**WATCHED, "seed": 1234})

    playground.submit()
    playground.wait_for_status("succeeded", timeout_s=120)

    seen = playground.seen()
    job = authorized(services).get(f"/jobs/{playground.job_id()}").json()
    assert job["status"] == "succeeded", services.services.logs()
    assert job["params"]["num_inference_steps"] == 30 and job["params"]["seed"] == 1234
    assert "denoising" in seen["stages"] and len(seen["stages"]) >= 2, seen
    assert seen["stages"] == [stage for stage in STAGES if stage in seen["stages"]], seen  # in order, no repeats
    assert "running" in seen["statuses"], seen
    assert seen["poseShownWhile"] == "running", seen  # the pose video came before the result, mid-job
    assert seen["previewsLoaded"] >= 1, seen  # at least one live preview decoded to pixels while it denoised
    assert any(re.fullmatch(r"about \d+(\.\d)? s left", eta) for eta in seen["etas"]), seen["etas"]
    timeline = playground.page.locator("#timeline li.done")
    assert timeline.evaluate_all("(items) => items.map((item) => item.dataset.stage)") == STAGES
    denoising_steps = [int(m[1]) for text in seen["steps"] if (m := re.match(r"denoising step (\d+)/30 ", text))]
    assert len(set(denoising_steps)) >= 2 and denoising_steps == sorted(denoising_steps), seen["steps"]
    for testid in ("pose-video", "result-video"):
        state = playground.wait_until_playable(testid)
        assert state["readyState"] >= 1 and state["duration"] > 0, state
    history = playground.by_testid("history").locator(f'button[data-job-id="{job["id"]}"]')
    history.wait_for()
    assert history.get_attribute("data-status") == "succeeded"
    assert playground.page.locator('#details dd[data-field="seed"]').inner_text() == "1234"
    assert seen["violations"] == []
    # Nothing came from elsewhere; the key went in headers only, and stayed in this tab's session storage.
    assert all(request.url.startswith(("blob:", playground.base_url + "/")) for request in playground.requests)
    assert not any(API_KEY in request.url for request in playground.requests)
    events = [r for r in playground.requests if r.url.endswith(f"/jobs/{job['id']}/events")]
    assert events and events[0].all_headers()["authorization"] == f"Bearer {API_KEY}"
    assert playground.page.evaluate("[sessionStorage.getItem('mimicmotion.apiKey'), localStorage.length]") == [
        API_KEY, 0,
    ]  # fmt: skip

    screenshot = tmp_path / "playground.png"
    playground.page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get(SCREENSHOT_TO):  # refresh the README's picture: PLAYGROUND_SCREENSHOT_TO=assets/playground.png
        shutil.copyfile(screenshot, REPO_ROOT / os.environ[SCREENSHOT_TO])


def test_a_queued_job_shows_its_place_and_cancel_from_the_page_ends_it_running_as_canceled(
    playground: Playground, services: FaultStack, inputs: Path
) -> None:
    client = authorized(services)
    image = client.post("/uploads", files={"file": ("person.png", (inputs / "person.png").read_bytes())}).json()
    video = client.post("/uploads", files={"file": ("drive.mp4", (inputs / "drive.mp4").read_bytes())}).json()
    blocker = client.post("/jobs", json={"image_url": image["url"], "video_url": video["url"], "params": LONG}).json()
    wait_for(lambda: denoising(services.store, blocker["id"]), timeout_s=60, message="the blocker to denoise")
    playground.open()
    playground.enter_key(API_KEY)
    playground.choose_image(inputs / "person.png")
    playground.choose_file("video-input", "drive.mp4", "video/mp4", (inputs / "drive.mp4").read_bytes())
    playground.set_params(LONG)
    playground.submit()
    playground.wait_for_status("queued", timeout_s=30)  # one worker, busy with the blocker
    playground.page.wait_for_function(
        "() => document.querySelector('[data-testid=status]').textContent.includes('next')"
    )
    assert client.post(f"/jobs/{blocker['id']}/cancel").status_code == 200
    playground.page.wait_for_selector("[data-testid=progress][data-stage=denoising]", timeout=90_000)
    assert playground.by_testid("cancel").is_enabled()

    playground.by_testid("cancel").click()

    playground.wait_for_status("canceled", timeout_s=30)
    job = client.get(f"/jobs/{playground.job_id()}").json()
    assert job["status"] == "canceled"
    assert job["progress"]["step"] < 100  # it stopped mid-denoising, not after finishing
    assert playground.by_testid("cancel").is_disabled()
    assert "Queued: next in line." in playground.seen()["statusTexts"]


def test_a_wrong_key_shows_the_401_message(playground: Playground, inputs: Path) -> None:
    playground.open()
    playground.enter_key("not-a-key")

    code, text = playground.error()
    assert code == "unauthorized"
    assert "did not accept the API key" in text and "unknown API key" in text and "unauthorized" in text

    playground.page.locator("#error").evaluate("(box) => { box.hidden = true; }")
    playground.choose_image(inputs / "person.png")
    playground.drop_video(inputs / "drive.mp4")
    playground.submit()  # the upload is refused the same way, and nothing is submitted
    code, text = playground.error()
    assert code == "unauthorized" and "unknown API key" in text
    assert playground.status() == "idle"


def test_a_refused_upload_shows_its_code_and_what_it_means(playground: Playground, inputs: Path) -> None:
    playground.open()
    playground.enter_key(API_KEY)
    playground.choose_image(inputs / "person.png")
    playground.choose_file("video-input", "notes.mp4", "video/mp4", b"%PDF-1.4 not a video at all\n" * 40)

    playground.submit()

    code, text = playground.error()
    assert code == "unsupported_media_type"
    assert "not an image or a video" in text and "code: unsupported_media_type · HTTP 415" in text
    assert playground.status() == "idle"


def test_the_params_form_is_the_api_schema_for_job_params(playground: Playground, services: FaultStack) -> None:
    schema = services.client.get("/openapi.json").json()["components"]["schemas"]["JobParams"]["properties"]
    playground.open()
    form = playground.page.locator("#params")

    names = form.locator("[name]").evaluate_all("(inputs) => inputs.map((input) => input.name)")
    assert names == list(schema)
    resolution = form.locator('[name="resolution"]')
    assert resolution.input_value() == str(schema["resolution"]["default"])
    assert resolution.get_attribute("min") == "128" and resolution.get_attribute("max") == "1024"
    assert resolution.get_attribute("step") == "64"
    assert form.locator('[name="sigma_schedule"] option').all_inner_texts() == schema["sigma_schedule"]["enum"]
    assert form.locator('[name="seed"]').input_value() == ""  # no default: the server draws one
    for name, prop in schema.items():
        assert prop["description"] in form.locator(f'label:has([name="{name}"]) small').inner_text()

    playground.enter_key(API_KEY)
    playground.set_params({"resolution": 100})
    playground.submit()  # refused in the page, naming the field and the range, before any upload
    code, text = playground.error()
    assert code == "invalid_params" and "resolution must be at least 128 (got 100)" in text


def quick_job(client: httpx.Client, inputs: Path, **fields: Any) -> dict[str, Any]:
    """A QUICK job on uploaded inputs, finished (one Prefer: wait request)."""
    image = client.post("/uploads", files={"file": ("person.png", (inputs / "person.png").read_bytes())}).json()
    video = client.post("/uploads", files={"file": ("drive.mp4", (inputs / "drive.mp4").read_bytes())}).json()
    body = {"image_url": image["url"], "video_url": video["url"], "params": {**QUICK, "seed": 7}, **fields}
    created = client.post("/jobs", json=body, headers={"Prefer": "wait=60"}, timeout=70)
    assert created.status_code == 200 and created.json()["status"] == "succeeded", created.text
    job: dict[str, Any] = created.json()
    return job


def test_copy_as_curl_runs_the_same_job_and_copy_as_python_calls_the_client(
    playground: Playground, services: FaultStack, inputs: Path
) -> None:
    client = authorized(services)
    job = quick_job(client, inputs)
    playground.open()
    playground.enter_key(API_KEY)
    playground.by_testid("history").locator(f'button[data-job-id="{job["id"]}"]').click()
    playground.wait_for_status("succeeded", timeout_s=10)

    playground.page.locator("#copy-python").click()
    python = playground.page.locator("#snippet").inner_text()
    playground.page.locator("#copy-curl").click()
    curl = playground.page.locator("#snippet").inner_text()

    assert API_KEY not in python and API_KEY not in curl  # both read $MIMICMOTION_API_KEY
    compile(python, "snippet.py", "exec")
    assert "from mimicmotion_client import Client" in python
    assert f'Client("{services.services.base_url}", api_key=os.environ["MIMICMOTION_API_KEY"])' in python
    assert 'client.run(image="person.png", video="drive.mp4", params={' in python and '"seed": 7' in python
    assert "model" not in python and "model" not in curl  # the default model goes unnamed
    # The curl script, run where person.png and drive.mp4 lie, submits the same job again: same params, same video.
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", curl], cwd=inputs, capture_output=True, text=True,
                         env={**os.environ, "MIMICMOTION_API_KEY": API_KEY}, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    again = wait_for_terminal(client, [json.loads(run.stdout)["id"]], timeout_s=60, stack=services.services)
    repeat = next(iter(again.values()))
    assert repeat["status"] == "succeeded" and repeat["params"] == job["params"]
    assert repeat["output"]["sha256"] == job["output"]["sha256"]


WAN = "wan2.2-animate"
WAN_CHOICES = {"prompt": "a dancer spins", "segment_frame_length": 81, "prev_segment_conditioning_frames": 5,
               "resolution": "480p", "seed": 21}  # fmt: skip


def test_the_model_picker_lists_the_served_models_and_renders_the_chosen_models_form(
    playground: Playground, services: FaultStack, inputs: Path
) -> None:
    client = authorized(services)
    models = {model["name"]: model for model in client.get("/models").json()["data"]}
    assert list(models) == ["mimicmotion-1.1", WAN]
    playground.open()
    playground.enter_key(API_KEY)  # GET /models needs the key
    playground.wait_for_model(WAN)
    picker, info = playground.by_testid("model-select"), playground.by_testid("model-info")

    options = picker.locator("option")
    assert options.evaluate_all("(items) => items.map((item) => item.value)") == list(models)
    assert options.all_inner_texts() == [f"{name}: {model['title']}" for name, model in models.items()]
    assert picker.input_value() == "mimicmotion-1.1"  # the default
    assert playground.param_names() == list(models["mimicmotion-1.1"]["params_schema"]["properties"])
    assert models["mimicmotion-1.1"]["license"] in info.inner_text()
    assert "no worker serves this model" not in info.inner_text().lower()  # w0 serves MimicMotion

    playground.choose_model(WAN)

    names = playground.param_names()
    assert names == list(models[WAN]["params_schema"]["properties"])
    assert {"prompt", "segment_frame_length", "prev_segment_conditioning_frames"} <= set(names)
    assert "tile_size" not in names and "sigma_schedule" not in names
    form = playground.page.locator("#params")
    assert form.locator('[name="segment_frame_length"]').input_value() == "77"
    assert form.locator('[name="resolution"] option').all_inner_texts() == ["480p", "720p"]
    assert models[WAN]["license"] in info.inner_text() and models[WAN]["summary"] in info.inner_text()
    assert "no worker serves this model: jobs wait" in info.inner_text().lower()  # no Wan worker in this stack

    playground.choose_image(inputs / "person.png")
    playground.drop_video(inputs / "drive.mp4")
    playground.set_params(WAN_CHOICES)
    playground.submit()
    playground.wait_for_status("queued", timeout_s=30)

    # The job as the server stored it: Wan's model and params, numbers as numbers; it waits in Wan's queue.
    job = client.get(f"/jobs/{playground.job_id()}").json()
    assert job["model"] == WAN and job["status"] == "queued"
    assert {name: job["params"][name] for name in WAN_CHOICES} == WAN_CHOICES
    assert job["params"]["num_inference_steps"] == models[WAN]["params_schema"]["properties"]["num_inference_steps"][
        "default"
    ]  # fmt: skip
    assert services.store.get(job["id"]).queue == WAN
    assert playground.page.locator('#details dd[data-field="model"]').inner_text() == WAN

    # Its snippets name the model; the curl script, run, submits the same job to the same model.
    playground.page.locator("#copy-python").click()
    python = playground.page.locator("#snippet").inner_text()
    assert f'client.run(image="person.png", video="drive.mp4", model="{WAN}", params={{' in python
    compile(python, "snippet.py", "exec")
    playground.page.locator("#copy-curl").click()
    curl = playground.page.locator("#snippet").inner_text()
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", curl], cwd=inputs, capture_output=True, text=True,
                         env={**os.environ, "MIMICMOTION_API_KEY": API_KEY}, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    again = client.get(f"/jobs/{json.loads(run.stdout)['id']}").json()
    assert again["model"] == WAN and again["params"] == job["params"]

    playground.choose_model("mimicmotion-1.1")  # and back: MimicMotion's form, with its defaults
    assert playground.param_names() == list(models["mimicmotion-1.1"]["params_schema"]["properties"])
    assert playground.page.locator('#params [name="resolution"]').input_value() == "576"
    for job_id in (job["id"], again["id"]):
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 200
    assert playground.seen()["violations"] == []


def test_without_the_model_list_the_page_falls_back_to_job_params_and_says_so(
    playground: Playground, services: FaultStack, inputs: Path
) -> None:
    schema = services.client.get("/openapi.json").json()["components"]["schemas"]["JobParams"]["properties"]
    playground.page.route(f"{playground.base_url}/models", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body=json.dumps({"error": {"code": "not_ready", "message": "the model list is down"}}),
    ))  # fmt: skip
    playground.open()
    playground.enter_key(API_KEY)
    info = playground.by_testid("model-info")
    playground.page.wait_for_function("() => document.querySelector('[data-testid=model-info]')"
                                      ".textContent.includes('the model list is down')")  # fmt: skip

    assert "Could not list the models" in info.inner_text() and "JobParams" in info.inner_text()
    picker = playground.by_testid("model-select")
    assert picker.is_disabled() and picker.locator("option").evaluate_all("(o) => o.map((i) => i.value)") == [
        "mimicmotion-1.1"
    ]  # fmt: skip
    assert playground.param_names() == list(schema)
    playground.choose_image(inputs / "person.png")
    playground.drop_video(inputs / "drive.mp4")
    playground.set_params(LONG)
    playground.submit()
    playground.page.wait_for_function("() => document.querySelector('#job-id').textContent.trim() !== ''")

    created = next(r for r in playground.requests if r.method == "POST" and r.url.endswith("/jobs"))
    assert "model" not in json.loads(created.post_data or "{}")  # the server's default model
    client = authorized(services)
    job = client.get(f"/jobs/{playground.job_id()}").json()
    assert job["model"] == "mimicmotion-1.1" and job["params"]["num_inference_steps"] == LONG["num_inference_steps"]
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 200


HOSTILE = "<img src=x onerror='window.__pwned = 1'><script>window.__pwned = 2</script>"


def test_metadata_and_file_names_holding_html_show_as_text(
    playground: Playground, services: FaultStack, inputs: Path
) -> None:
    job_id = quick_job(authorized(services), inputs, metadata={"note": HOSTILE})["id"]
    playground.open()
    playground.enter_key(API_KEY)
    playground.by_testid("history").locator(f'button[data-job-id="{job_id}"]').click()
    playground.wait_for_status("succeeded", timeout_s=10)
    playground.choose_file("image-input", f"{HOSTILE}.png", "image/png", (inputs / "person.png").read_bytes())

    metadata = playground.page.locator('#details dd[data-field="metadata"]')
    assert HOSTILE in metadata.inner_text()
    assert HOSTILE in playground.by_testid("history").inner_text()
    assert playground.page.locator("#image-name").inner_text().startswith(f"{HOSTILE}.png")
    # No element was made from the strings, and nothing in them ran.
    assert playground.page.locator("main img[src='x'], main script, #history img, #details img").count() == 0
    assert playground.page.evaluate("window.__pwned") is None
    assert playground.seen()["violations"] == []


def test_the_page_is_served_under_a_strict_csp_without_inline_script_or_style(services: FaultStack) -> None:
    response = httpx.get(f"{services.services.base_url}/", trust_env=False)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["img-src"] == policy["media-src"] == "'self' blob:"  # local storage: files come from /files
    html = response.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="/playground/' in attributes and body.strip() == "" for attributes, body in scripts)
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    for name in ("playground.js", "api.js", "params.js", "models.js", "snippets.js", "view.js", "playground.css"):
        asset = httpx.get(f"{services.services.base_url}/playground/{name}", trust_env=False)
        assert asset.status_code == 200 and "content-security-policy" in asset.headers, name
    assert httpx.get(f"{services.services.base_url}/playground/..%2Fapp.py", trust_env=False).status_code == 404


def test_without_keys_on_loopback_the_page_needs_no_key(page: "Page", keyless_url: str, inputs: Path) -> None:
    playground = Playground(page, keyless_url)
    playground.open()
    assert page.locator("body").get_attribute("data-key-required") == "false"
    assert "needs no key" in page.locator("#key-note").inner_text()
    playground.choose_image(inputs / "person.png")
    playground.drop_video(inputs / "drive.mp4")
    playground.set_params(QUICK)

    playground.submit()

    playground.wait_for_status("succeeded", timeout_s=60)
    assert playground.wait_until_playable("result-video")["duration"] > 0
    playground.by_testid("history").locator(f'button[data-job-id="{playground.job_id()}"]').wait_for()
    assert page.locator("#error").is_hidden()
