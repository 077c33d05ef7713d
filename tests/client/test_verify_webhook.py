"""``verify_webhook`` checked against the Standard Webhooks reference library and the gateway's own signer."""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from mimicmotion_client import WebhookVerificationError, verify_webhook
from standardwebhooks import Webhook

from core.webhooks import event_body, new_secret, signed_headers

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes!!!!").decode()
JOB = {"id": "job-1", "status": "succeeded", "params": {"seed": 3}, "output": None, "progress": None}


def signed(secret: str = SECRET, *, body: bytes | None = None, at: float | None = None) -> tuple[bytes, dict[str, str]]:
    """A body and headers signed by the reference library (a sender that is not our gateway)."""
    body = body if body is not None else json.dumps({**JOB, "type": "job.succeeded"}).encode()
    timestamp = datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC)
    signature = Webhook(secret).sign("msg_1", timestamp, body.decode())
    return body, {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(int(timestamp.timestamp())),
                  "Webhook-Signature": signature}  # fmt: skip


def test_a_reference_signed_webhook_verifies_into_a_typed_event() -> None:
    body, headers = signed()
    event = verify_webhook(body, headers, SECRET)
    assert (event.type, event.id, event.job.id, event.job.params) == ("job.succeeded", "msg_1", "job-1", {"seed": 3})
    assert verify_webhook(body.decode(), headers, SECRET).job.status == "succeeded"  # the body as text too


def test_the_gateways_own_signature_verifies() -> None:
    secret = new_secret()
    body = event_body("job.succeeded", JOB)
    headers = signed_headers(secret, "msg_2", int(time.time()), body)
    assert verify_webhook(body, headers, secret).type == "job.succeeded"


def test_one_matching_signature_among_several_is_enough() -> None:  # a secret rotation signs twice
    body, headers = signed()
    other = Webhook(new_secret()).sign("msg_1", datetime.now(tz=UTC), body.decode())
    headers["Webhook-Signature"] = f"v1a,xyz {other} {headers['Webhook-Signature']}"
    assert verify_webhook(body, headers, SECRET).id == "msg_1"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, headers: (body + b" ", headers), id="body-changed"),
        pytest.param(lambda body, headers: (body, {**headers, "Webhook-Id": "msg_9"}), id="id-changed"),
        pytest.param(lambda body, headers: (body, {k: v for k, v in headers.items() if k != "Webhook-Id"}),
                     id="id-missing"),
        pytest.param(lambda body, headers: (body, {**headers, "Webhook-Signature": "v2," +
                     headers["Webhook-Signature"][3:]}), id="other-version"),
        pytest.param(lambda body, headers: (body, {**headers, "Webhook-Timestamp": "soon"}), id="bad-timestamp"),
    ],
)  # fmt: skip
def test_tampered_webhooks_are_refused(tamper) -> None:
    body, headers = tamper(*signed())
    with pytest.raises(WebhookVerificationError) as refused:
        verify_webhook(body, headers, SECRET)
    assert refused.value.code == "invalid_webhook_signature"


def test_another_secret_or_an_old_timestamp_is_refused() -> None:
    body, headers = signed(new_secret())
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(body, headers, SECRET)
    body, headers = signed(at=time.time() - 301)
    with pytest.raises(WebhookVerificationError, match="from now"):
        verify_webhook(body, headers, SECRET)
    body, headers = signed(at=time.time() + 301)  # from the future, as a skewed or forged clock
    with pytest.raises(WebhookVerificationError, match="from now"):
        verify_webhook(body, headers, SECRET)
    body, headers = signed(at=time.time() - 280)
    assert verify_webhook(body, headers, SECRET).id == "msg_1"  # within the five minutes
