"""core.webhooks against the reference implementation (the standardwebhooks library) and its own rules."""

import random
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks import WebhookVerificationError as LibraryVerificationError

from core import webhooks
from core.contract import events
from core.webhooks import WebhookVerificationError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the spec's example secret
BODY = b'{"type":"job.succeeded","id":"abc","status":"succeeded"}'

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def test_sign_matches_the_spec_example() -> None:
    # Standard Webhooks spec example: msg_p5jXN8AQM9LWM0D4loKWxJek, 1614265330, {"test": 2432232314}
    signature = webhooks.sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_verify_with_the_standardwebhooks_library() -> None:
    now = int(time.time())
    headers = webhooks.signed_headers(SECRET, "msg_1", now, BODY)
    assert Webhook(SECRET).verify(BODY, headers) == {"type": "job.succeeded", "id": "abc", "status": "succeeded"}
    with pytest.raises(LibraryVerificationError):
        Webhook(SECRET).verify(BODY.replace(b"succeeded", b"failed"), headers)
    with pytest.raises(LibraryVerificationError):
        Webhook(webhooks.new_secret()).verify(BODY, headers)


def test_verify_accepts_the_librarys_signature_and_refuses_tampering_and_old_timestamps() -> None:
    now = int(time.time())
    library_signature = Webhook(SECRET).sign("msg_2", datetime.fromtimestamp(now, tz=UTC), BODY.decode())
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(now), "webhook-signature": library_signature}
    webhooks.verify(SECRET, headers, BODY, now=now)
    # Rotation: one of several space-separated signatures is enough.
    webhooks.verify(SECRET, {**headers, "webhook-signature": f"v1,bm90IGl0 {library_signature}"}, BODY, now=now)
    for bad_headers, body, at, reason in (
        (headers, BODY + b" ", now, "no webhook-signature matches"),
        ({**headers, "webhook-id": "msg_3"}, BODY, now, "no webhook-signature matches"),
        (headers, BODY, now + 6 * 60, "more than 5 minutes from now"),
        ({k: v for k, v in headers.items() if k != "webhook-signature"}, BODY, now, "missing or malformed"),
        # int() reads these as the same timestamp; the header is ASCII digits only.
        ({**headers, "webhook-timestamp": f" {now} "}, BODY, now, "missing or malformed"),
        ({**headers, "webhook-timestamp": str(now).translate(ARABIC_INDIC)}, BODY, now, "missing or malformed"),
    ):
        with pytest.raises(WebhookVerificationError, match=reason):
            webhooks.verify(SECRET, bad_headers, body, now=at)


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="])
def test_secret_key_refuses_secrets_without_prefix_base64_or_length(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        events.secret_key(secret)


def test_new_secret_is_usable_and_fresh() -> None:
    first, second = webhooks.new_secret(), webhooks.new_secret()
    assert first != second and len(events.secret_key(first)) == 32


def test_retry_schedule_is_svix_like_with_bounded_jitter_then_exhausted() -> None:
    schedule = events.parse_retry_schedule("0,5,300,1800,7200,18000,36000,36000")
    assert schedule == events.SVIX_RETRY_SCHEDULE_S
    rng = random.Random(0)
    for num_attempts, base in enumerate(schedule):
        delay = webhooks.retry_delay_s(schedule, num_attempts, rng)
        assert delay is not None and base * 0.9 <= delay <= base * 1.1
    assert webhooks.retry_delay_s(schedule, len(schedule), rng) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "give at least one delay"), ("5,-1", "none negative"), ("a,b", "is not a comma-separated list of seconds")],
)
def test_bad_retry_schedule_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        events.parse_retry_schedule(value)


def test_event_body_is_the_job_object_with_type_first() -> None:
    body = webhooks.event_body("job.started", {"id": "j1", "status": "running"})
    assert body == b'{"type":"job.started","id":"j1","status":"running"}'


def test_success_and_permanent_refusal_statuses() -> None:
    assert [webhooks.is_success(code) for code in (200, 204, 299, 301, 404, 500)] == [True] * 3 + [False] * 3
    assert webhooks.is_permanent_refusal(410) and not webhooks.is_permanent_refusal(404)


def test_during_a_rotation_every_secret_signs_and_each_verifies_alone() -> None:
    now, new = int(time.time()), webhooks.new_secret()
    headers = webhooks.signed_headers(f"{new},{SECRET}", "msg_3", now, BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, SECRET):  # the receiver may hold either while it moves over
        assert Webhook(secret).verify(BODY, headers)["status"] == "succeeded"
    with pytest.raises(LibraryVerificationError):
        Webhook(webhooks.new_secret()).verify(BODY, headers)


def test_settings_check_every_rotated_secret() -> None:
    from core.settings import Settings

    assert Settings(webhook_secret=f"{SECRET}, {webhooks.new_secret()}").webhook_secret.get_secret_value()
    with pytest.raises(ValueError, match="whsec_"):
        Settings(webhook_secret=f"{SECRET},not-a-secret")
