"""``Client.stream`` across a gateway crash: a second gateway on the stack's Redis and worker is killed mid-stream
and started again on the same port; the stream reconnects with Last-Event-ID and ends with the terminal event,
no state repeated and none skipped in the numbering."""

import signal
from contextlib import ExitStack
from pathlib import Path

import pytest
from mimicmotion_client import Client, Event

from tests.support.client_stack import SLOW, ClientStack
from tests.support.processes import ServiceProcess, http_ok, wait_for
from tests.support.redis_server import free_port
from tests.support.service_stack import guarded_process

pytestmark = pytest.mark.e2e


def start_gateway(exits: ExitStack, stack: ClientStack, port: int, log_dir: Path, name: str) -> ServiceProcess:
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    return exits.enter_context(guarded_process(name, args, stack.services.env, log_dir))


def test_stream_survives_a_gateway_restart_mid_job(client_stack: ClientStack, tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    events: list[Event] = []
    with ExitStack() as exits, Client(base_url, client_stack.fresh_key()) as client:
        first = start_gateway(exits, client_stack, port, tmp_path, "gateway-a")
        wait_for(lambda: http_ok(f"{base_url}/healthz"), timeout_s=60, message="the gateway", interval_s=0.1)
        inputs = (f"{client_stack.inputs_url}/person.png", f"{client_stack.inputs_url}/drive.mp4")
        job = client.submit(*inputs, {**SLOW, "num_inference_steps": 100})
        restarted_at = None
        for event in client.stream(job.id):
            events.append(event)
            progress = event.job.progress
            if restarted_at is None and progress is not None and progress.stage == "denoising" and progress.step >= 1:
                first.stop(signal.SIGKILL)  # a crash: the open stream breaks mid-body
                start_gateway(exits, client_stack, port, tmp_path, "gateway-b")
                restarted_at = len(events)
        logs = first.logs()

    assert restarted_at is not None, [(e.job.status, e.job.progress) for e in events]
    assert len(events) > restarted_at, logs  # events came from the restarted gateway too
    assert events[-1].type == "status" and events[-1].job.status == "succeeded"
    assert [e.job.is_terminal for e in events].count(True) == 1
    # The new gateway continued the numbering from Last-Event-ID: ids 1, 2, 3 ... with no restart at 1,
    # and no state (the id's fingerprint) came twice.
    assert [int(str(e.id).split("-")[0]) for e in events] == list(range(1, len(events) + 1))
    fingerprints = [str(e.id).split("-")[1] for e in events]
    assert len(set(fingerprints)) == len(fingerprints)
