"""The playground as a test drives it: the controls by their data-testid, and a recorder in the page.

The recorder (an init script, run before the page's own modules) notes every stage the progress bar
shows, each step and ETA text beside it, every status and its text, whether the pose video appeared before the job
finished, each preview image that loaded with pixels, and every Content-Security-Policy violation, so
a test asserts on what the page did over time rather than on one moment it happened to look.
"""

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Request

API_KEY = "playground-key-1"
SERVED_MODELS = "mimicmotion-1.1,wan2.2-animate"  # MIMICMOTION_MODELS of the test gateway

RECORDER = """
window.__seen = {stages: [], steps: [], etas: [], statuses: [], statusTexts: [], violations: [],
                 poseShownWhile: null, previewsLoaded: 0};
document.addEventListener("securitypolicyviolation", (e) => window.__seen.violations.push(
  `${e.violatedDirective} ${e.blockedURI}`));
document.addEventListener("DOMContentLoaded", () => {
  const seen = window.__seen;
  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const progress = byTestId("progress"), status = byTestId("status");
  const pose = byTestId("pose-video"), preview = byTestId("preview");
  new MutationObserver(() => {
    const stage = progress.dataset.stage;
    if (stage && seen.stages[seen.stages.length - 1] !== stage) seen.stages.push(stage);
  }).observe(progress, {attributes: true, attributeFilter: ["data-stage"]});
  const steps = document.querySelector("#progress-text");
  new MutationObserver(() => {
    const text = steps.textContent;
    if (text && seen.steps[seen.steps.length - 1] !== text) seen.steps.push(text);
  }).observe(steps, {childList: true, characterData: true, subtree: true});
  const eta = document.querySelector("#eta");
  new MutationObserver(() => { if (eta.textContent) seen.etas.push(eta.textContent); })
    .observe(eta, {childList: true, characterData: true, subtree: true});
  new MutationObserver(() => seen.statusTexts.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
  new MutationObserver(() => {
    const value = status.dataset.status;
    if (seen.statuses[seen.statuses.length - 1] !== value) seen.statuses.push(value);
  }).observe(status, {attributes: true, attributeFilter: ["data-status"]});
  new MutationObserver(() => {
    if (pose.getAttribute("src") && seen.poseShownWhile === null) seen.poseShownWhile = status.dataset.status;
  }).observe(pose, {attributes: true, attributeFilter: ["src"]});
  preview.addEventListener("load", () => { if (preview.naturalWidth > 0) seen.previewsLoaded += 1; });
});
"""

# Builds a File from base64 bytes and drops it on a drop zone, as a drag from the desktop would.
DROP = """([selector, name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, {type}));
  const zone = document.querySelector(selector);
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""

MEDIA_STATE = """(element) => ({readyState: element.readyState ?? null, duration: element.duration ?? null,
  naturalWidth: element.naturalWidth ?? null, error: element.error ? element.error.code : null,
  src: element.currentSrc || element.getAttribute("src")})"""


class Playground:
    def __init__(self, page: "Page", base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.requests: list[Request] = []  # every request the page made, in order
        page.on("request", self._record)

    def _record(self, request: "Request") -> None:
        self.requests.append(request)

    def by_testid(self, testid: str) -> "Locator":
        return self.page.get_by_test_id(testid)

    def open(self) -> None:
        self.page.add_init_script(RECORDER)
        self.page.goto(f"{self.base_url}/")
        self.page.wait_for_selector("body[data-ready=true]")

    def enter_key(self, key: str) -> None:
        field = self.by_testid("api-key")
        field.fill(key)
        field.dispatch_event("change")

    def choose_image(self, path: Path) -> None:
        self.by_testid("image-input").set_input_files(path)

    def choose_file(self, testid: str, name: str, mime_type: str, data: bytes) -> None:
        self.by_testid(testid).set_input_files({"name": name, "mimeType": mime_type, "buffer": data})

    def drop_video(self, path: Path) -> None:
        data = base64.b64encode(path.read_bytes()).decode()
        self.page.evaluate(DROP, ["#video-drop", path.name, "video/mp4", data])

    def set_params(self, params: dict[str, Any]) -> None:
        form = self.page.locator("#params")
        for name, value in params.items():
            field = form.locator(f'[name="{name}"]')
            if field.evaluate("(element) => element.tagName") == "SELECT":
                field.select_option(str(value))
            else:
                field.fill(str(value))

    def wait_for_model(self, name: str) -> None:
        """The picker lists ``name`` (GET /models was read)."""
        self.page.wait_for_selector(f'[data-testid=model-select] option[value="{name}"]', state="attached")

    def choose_model(self, name: str) -> None:
        self.by_testid("model-select").select_option(name)

    def param_names(self) -> list[str]:
        names: list[str] = self.page.locator("#params [name]").evaluate_all("(inputs) => inputs.map((i) => i.name)")
        return names

    def submit(self) -> None:
        self.by_testid("submit").click()

    def status(self) -> str:
        return str(self.by_testid("status").get_attribute("data-status"))

    def wait_for_status(self, status: str, timeout_s: float) -> None:
        self.page.wait_for_selector(f'[data-testid=status][data-status="{status}"]', timeout=timeout_s * 1000)

    def job_id(self) -> str:
        return self.page.locator("#job-id").inner_text().strip()

    def media(self, testid: str) -> dict[str, Any]:
        state: dict[str, Any] = self.by_testid(testid).evaluate(MEDIA_STATE)
        return state

    def wait_until_playable(self, testid: str, timeout_s: float = 30) -> dict[str, Any]:
        """The <video> has its metadata (readyState >= 1) and a duration; returns its state."""
        self.page.wait_for_function(
            """(id) => { const v = document.querySelector(`[data-testid="${id}"]`);
                         return v.readyState >= 1 && v.duration > 0; }""",
            arg=testid, timeout=timeout_s * 1000,
        )  # fmt: skip
        return self.media(testid)

    def seen(self) -> dict[str, Any]:
        seen: dict[str, Any] = self.page.evaluate("window.__seen")
        return seen

    def error(self) -> tuple[str, str]:
        """(data-code, visible text) of the error box, once it shows."""
        box = self.page.locator("#error")
        box.wait_for(state="visible")
        return str(box.get_attribute("data-code")), box.inner_text()
