"""Fixtures for the playground's browser tests: one real stack (gateway under uvicorn serving both models, a
worker on MimicMotion's tiny model, API keys required) and one headless Debian chromium, both shared by the
module's tests.

Playwright drives the system chromium (``/usr/bin/chromium``, installed by ``make system-deps``); no
browser is downloaded. Each test gets a fresh browser context, so session storage starts empty.
"""

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.playground_page import API_KEY, SERVED_MODELS, Playground
from tests.support.fault_stack import FaultStack, fault_stack
from tests.support.input_files import write_inputs
from tests.support.processes import http_ok, wait_for
from tests.support.redis_server import free_port
from tests.support.service_stack import guarded_process

if TYPE_CHECKING:  # playwright is imported where a browser starts: without it, only the browser tests fail
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
# Root (CI containers) cannot use chromium's sandbox; the rest keeps a headless run quiet and offline.
CHROMIUM_ARGS = [
    "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
    "--mute-audio", *(["--no-sandbox"] if os.geteuid() == 0 else []),
]  # fmt: skip


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[FaultStack]:
    """The gateway serves both models; the one worker serves MimicMotion, so Wan2.2-Animate's jobs wait queued."""
    with ExitStack() as stack:
        yield fault_stack(stack, tmp_path_factory.mktemp("playground"), tiny_model_dir, ["w0"], api_keys=API_KEY,
                          models=SERVED_MODELS)  # fmt: skip


@pytest.fixture(scope="module")
def keyless_url(services: FaultStack) -> Iterator[str]:
    """A second gateway on the same Redis, storage and worker, without API keys (allowed on loopback)."""
    stack = services.services
    env = {name: value for name, value in stack.env.items() if name != "MIMICMOTION_API_KEYS"}
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    with guarded_process("gateway-keyless", args, env, stack.log_dir) as gateway:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: gateway.is_running() and http_ok(f"{url}/healthz"), timeout_s=60,
                 message="the keyless gateway to answer", interval_s=0.1)  # fmt: skip
        yield url


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """person.png and a 9-frame drive.mp4: a few denoising tiles, still seconds on the tiny model."""
    return write_inputs(tmp_path_factory.mktemp("playground-inputs"), num_frames=9)


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: "Browser") -> Iterator["Page"]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def playground(page: "Page", services: FaultStack) -> Playground:
    return Playground(page, services.services.base_url)
