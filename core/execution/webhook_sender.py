"""deliver_webhook: one attempt at one recorded delivery, in order per job, retried on Svix's schedule.

Only the webhook worker calls this (never the GPU worker). The receiver's URL is user-supplied, so it
is vetted like an input URL (core.network.url_guard): private and loopback addresses are refused unless
``fetch_allowed_networks`` opens them, and the connection is pinned to the vetted address.
"""

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from core import webhooks
from core.contract.public import JobView, public_fields
from core.contract.records import utc_now
from core.errors import ForbiddenAddressError, InputFetchError, UnsupportedUrlError
from core.jobs.deliveries import Deliveries, Delivery, DeliveryAttempt, DeliveryState
from core.network.deadline import ExchangeDeadline
from core.network.url_guard import Resolver, default_resolver, unmapped, vet_url
from core.settings import Settings
from core.storage import Storage, mint_live_urls, mint_output

logger = logging.getLogger(__name__)

USER_AGENT = "mimicmotion-webhooks/1"
LOCK_RETRY_S = 0.2  # another attempt of the same job is in flight: look again shortly
OWNER_BUSY_RETRY_S = 0.5  # (to twice that) the key has webhook_max_in_flight_per_key attempts under way


@dataclass
class WebhookDeps:
    """What delivering needs from its process; the webhook worker builds one, tests build their own."""

    deliveries: Deliveries
    storage: Storage
    settings: Settings
    resolver: Resolver = default_resolver
    now: Callable[[], datetime] = utc_now
    rng: random.Random = field(default_factory=random.Random)


@dataclass(frozen=True)
class _Outcome:
    attempt: DeliveryAttempt
    permanent: bool = False  # no retry can help (410 Gone, a refused URL)


def deliver_webhook(delivery_id: str, deps: WebhookDeps) -> None:
    """Attempt ``delivery_id`` if it is its job's oldest unfinished delivery; record the attempt.

    A delivery waiting behind an earlier one of the same job is left for that one to hand on, so a
    receiver gets each job's events in order even while it is down.
    """
    deliveries = deps.deliveries
    delivery = deliveries.get(delivery_id)
    if delivery is None or delivery.state.is_final:
        deliveries.unschedule(delivery_id)
        return
    token = deliveries.lock_job(delivery.job_id, ttl_s=deps.settings.webhook_timeout_s + 30)
    if token is None:
        deliveries.schedule(delivery_id, deps.now() + timedelta(seconds=LOCK_RETRY_S))
        return
    try:
        head = deliveries.head(delivery.job_id)
        if head is None or head.id != delivery_id:
            deliveries.unschedule(delivery_id)  # the head hands on to it when it is done
            return
        owner, settings = head.job.owner, deps.settings
        slot = deliveries.take_owner_slot(
            owner, limit=settings.webhook_max_in_flight_per_key, ttl_s=settings.webhook_timeout_s + 30, now=deps.now()
        )
        if slot is None:
            # The key has its share of attempts in flight: wait in the due set, not in a delivery thread,
            # so one key's slow receivers never hold every thread that other keys' events need. Jittered,
            # so a key's waiting deliveries do not all come due again at once.
            wait_s = OWNER_BUSY_RETRY_S * (1 + deps.rng.random())
            deliveries.schedule(delivery_id, deps.now() + timedelta(seconds=wait_s))
            return
        try:
            delivery = _attempt(head, deps)
            deliveries.save(delivery)
            deliveries.count_attempt(delivered=delivery.state is DeliveryState.delivered)
        finally:
            deliveries.release_owner_slot(owner, slot)
    finally:
        deliveries.unlock_job(delivery.job_id, token)
    # After unlocking: whoever is scheduled next must be able to take the lock.
    if delivery.next_retry_at is not None:
        deliveries.schedule(delivery.id, delivery.next_retry_at)
        return
    deliveries.unschedule(delivery.id)
    following = deliveries.head(delivery.job_id)
    if following is not None:
        deliveries.schedule(following.id, deps.now())


def _attempt(delivery: Delivery, deps: WebhookDeps) -> Delivery:
    outcome = _post(delivery, deps)
    attempts = [*delivery.attempts, outcome.attempt]
    code = outcome.attempt.status_code
    if code is not None and webhooks.is_success(code):
        logger.info("job %s: webhook %s %s delivered (HTTP %d)", delivery.job_id, delivery.type, delivery.id, code)
        return delivery.model_copy(
            update={"attempts": attempts, "state": DeliveryState.delivered, "next_retry_at": None,
                    "finished_at": outcome.attempt.at}
        )  # fmt: skip
    schedule_s = deps.settings.webhook_retry_schedule_s
    delay_s = None if outcome.permanent else webhooks.retry_delay_s(schedule_s, len(attempts), deps.rng)
    shown = f"HTTP {code}" if code is not None else outcome.attempt.error
    if delay_s is None:
        logger.warning("job %s: webhook %s %s failed for good (%s)", delivery.job_id, delivery.type, delivery.id, shown)
        return delivery.model_copy(
            update={"attempts": attempts, "state": DeliveryState.failed, "next_retry_at": None,
                    "finished_at": outcome.attempt.at}
        )  # fmt: skip
    logger.info("job %s: webhook %s attempt %d failed (%s); next in %.1f s",
                delivery.job_id, delivery.id, len(attempts), shown, delay_s)  # fmt: skip
    return delivery.model_copy(update={"attempts": attempts, "next_retry_at": deps.now() + timedelta(seconds=delay_s)})


def event_body(delivery: Delivery, deps: WebhookDeps) -> bytes:
    """The event's body: the job as it was at the event, with output URLs minted for this attempt."""
    job = delivery.job
    output = None if job.output is None else mint_output(deps.storage, job.output, ttl_s=deps.settings.output_url_ttl_s)
    live = mint_live_urls(deps.storage, job, ttl_s=deps.settings.output_url_ttl_s)
    view = JobView(**public_fields(job, queue_position=None, output=output, **live))
    return webhooks.event_body(delivery.type, view.model_dump(mode="json"))


def _post(delivery: Delivery, deps: WebhookDeps) -> _Outcome:
    at, started = deps.now(), time.monotonic()
    secret = deps.settings.webhook_secret.get_secret_value()

    def outcome(status_code: int | None = None, error: str | None = None, permanent: bool = False) -> _Outcome:
        attempt = DeliveryAttempt(at=at, status_code=status_code, error=error,
                                  duration_s=round(time.monotonic() - started, 4))  # fmt: skip
        refused = status_code is not None and webhooks.is_permanent_refusal(status_code)
        return _Outcome(attempt, permanent=permanent or refused)

    if not secret:
        return outcome(error="MIMICMOTION_WEBHOOK_SECRET is not set; webhooks cannot be signed", permanent=True)
    try:
        target = vet_url(
            delivery.url, allowed_networks=deps.settings.fetch_allowed_networks, resolver=deps.resolver, label="webhook"
        )
    except (ForbiddenAddressError, UnsupportedUrlError) as exc:
        return outcome(error=f"{exc.code}: {exc.message}", permanent=True)
    except InputFetchError as exc:  # the name does not resolve (now): worth another try later
        return outcome(error=f"{exc.code}: {exc.message}")
    body = event_body(delivery, deps)
    headers = {
        **webhooks.signed_headers(secret, delivery.id, int(at.timestamp()), body),
        "user-agent": USER_AGENT, "host": target.host_header,
    }  # fmt: skip
    timeout_s = deps.settings.webhook_timeout_s
    late = f"no complete answer within {timeout_s:g} s"
    error = "no address to connect to"
    # webhook_timeout_s bounds the whole attempt (connects, request, the answer's head), not each read:
    # a receiver dribbling its answer is cut off at the deadline (issue 19).
    # trust_env=False: no proxy from the environment may carry the request elsewhere.
    with ExchangeDeadline(timeout_s) as deadline, httpx.Client(trust_env=False, follow_redirects=False) as client:
        for address in target.addresses:
            if deadline.expired():
                return outcome(error=late)
            connect_to = unmapped(address)
            literal = f"[{connect_to}]" if connect_to.version == 6 else str(connect_to)
            request = client.build_request(
                "POST", f"{target.scheme}://{literal}:{target.port}{target.request_target}", content=body,
                headers=headers, timeout=httpx.Timeout(max(deadline.remaining_s(), 0.001)),
                extensions={"sni_hostname": target.host, "trace": deadline.trace},  # SNI, certificate: the name
            )  # fmt: skip
            try:
                response = client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error = late if deadline.expired() else f"cannot connect to {connect_to}: {exc}"
                continue  # try the host's next address
            except httpx.TimeoutException:
                return outcome(error=late)
            except httpx.TransportError as exc:
                return outcome(error=late if deadline.expired() else f"the connection broke: {exc}")
            response.close()  # the body is not read: only the status counts
            return outcome(status_code=response.status_code)
    return outcome(error=error)
