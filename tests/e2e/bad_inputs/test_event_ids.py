"""Last-Event-ID values a client got wrong: a fresh stream from the first event, never a dead one (issue 19).

Header bytes reach the app as latin-1, so b"\\xb2" is "²": str.isdigit() said yes, int() said no, and
the stream died with a traceback after its 200.
"""

import pytest

from tests.e2e.bad_inputs.world import World
from tests.support.service_stack import wait_for_terminal

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "last_event_id",
    [b"\xb2-abc", b"\xb9\xb3", "١٢-abc".encode(), b"1_0-abc", b"+7-abc", b"9" * 40, b"-", b"\xff\xfe"],
    ids=[
        "superscript_two", "superscripts", "arabic_indic_utf8", "underscore", "plus_sign", "forty_digits", "dash",
        "junk",
    ],
)
def test_event_stream_with_a_malformed_last_event_id_starts_afresh(world: World, last_event_id: bytes) -> None:
    job_id = world.job_ids["loopback_v4"]
    wait_for_terminal(world.client, [job_id], timeout_s=90, stack=world.stack)

    response = world.client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": last_event_id})

    assert response.status_code == 200, response.text
    frames = [frame for frame in response.text.split("\n\n") if frame.startswith("event:")]
    assert len(frames) == 1 and frames[0].startswith("event: status\nid: 1-"), response.text
    assert '"status":"failed"' in frames[0]
    assert world.stack.gateway.is_running()
