"""The client's retries against the real gateway behind a misbehaving proxy: 503/429 with and without
Retry-After, dropped connections, and a submit whose answer was lost after the gateway made the job."""

import itertools

import pytest
from mimicmotion_client import APIConnectionError, Client, RateLimitError, RetryPolicy

from tests.support.client_stack import QUICK, SLOW, ClientStack
from tests.support.faulty_proxy import Fault, faulty_proxy
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)


def inputs(stack: ClientStack) -> tuple[str, str]:
    return f"{stack.inputs_url}/person.png", f"{stack.inputs_url}/drive.mp4"


def test_a_503_with_retry_after_is_retried_after_that_long(client_stack: ClientStack) -> None:
    key = client_stack.fresh_key()
    with faulty_proxy(client_stack.base_url) as (proxy, url), Client(url, key, retry=FAST) as client:
        job = client.submit(*inputs(client_stack), SLOW)
        proxy.add(Fault("GET", "/jobs/", "answer", times=2, status=503, headers={"Retry-After": "1"}))
        fetched = client.get(job.id)
        client.cancel(job.id)
        gets = proxy.seen("GET", f"/jobs/{job.id}")

    assert fetched.id == job.id
    assert [r.action for r in gets] == ["answer", "answer", "forward"]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(gets)]
    assert all(gap >= 0.95 for gap in gaps), gaps  # Retry-After, not the 10 ms backoff


def test_429s_are_retried_up_to_max_attempts_then_raised_with_the_gateways_code(client_stack: ClientStack) -> None:
    body = b'{"error": {"code": "too_many_queued_jobs", "message": "slow down"}}'
    key = client_stack.fresh_key()
    with faulty_proxy(client_stack.base_url) as (proxy, url), Client(url, key, retry=FAST) as client:
        proxy.add(Fault("GET", "/jobs", "answer", times=10, status=429, body=body))
        with pytest.raises(RateLimitError) as refused:
            client.list_page()
        assert len(proxy.seen("GET", "/jobs")) == FAST.max_attempts
    error = refused.value
    assert (error.status, error.code, error.message) == (429, "too_many_queued_jobs", "slow down")


def test_a_dropped_connection_is_retried(client_stack: ClientStack) -> None:
    key = client_stack.fresh_key()
    with faulty_proxy(client_stack.base_url) as (proxy, url), Client(url, key, retry=FAST) as client:
        proxy.add(Fault("GET", "/jobs", "drop", times=2))
        page = client.list_page()
        assert [r.action for r in proxy.seen("GET", "/jobs")] == ["drop", "drop", "forward"]
    assert page.data == []


def test_a_submit_whose_answer_was_lost_is_retried_into_the_same_single_job(client_stack: ClientStack) -> None:
    key = client_stack.fresh_key()
    with faulty_proxy(client_stack.base_url) as (proxy, url), Client(url, key, retry=FAST) as client:
        proxy.add(Fault("POST", "/jobs", "drop_answer", times=1))  # the gateway makes the job; the answer is lost
        job = client.submit(*inputs(client_stack), QUICK)
        posts = proxy.seen("POST", "/jobs")
        listed = list(client.list())

    assert [r.action for r in posts] == ["drop_answer", "forward"]
    assert posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]
    assert [j.id for j in listed] == [job.id]  # one job, the one the retry was answered with


def test_no_gateway_at_all_is_a_connection_error_after_the_tries(client_stack: ClientStack) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with Client(nowhere, "key", retry=FAST) as client, pytest.raises(APIConnectionError) as lost:
        client.get("some-job")
    assert lost.value.status is None and lost.value.code == "connection_error"
    assert f"no answer after {FAST.max_attempts} tries" in lost.value.message
