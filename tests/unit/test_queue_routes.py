import pytest

from core.contract.queues import GPU_QUEUE, QueueRoute, parse_queue_routes, queue_for


def test_parse_queue_routes_sorts_by_minimum_resolution() -> None:
    assert parse_queue_routes(" 768=gpu-80gb, 0=gpu ") == [QueueRoute(0, "gpu"), QueueRoute(768, "gpu-80gb")]
    assert parse_queue_routes("") == []


@pytest.mark.parametrize("value", ["gpu", "=gpu", "x=gpu", "768=", "-1=gpu", "0=webhooks"])
def test_parse_queue_routes_refuses_malformed_pairs(value: str) -> None:
    with pytest.raises(ValueError, match="MIN_RESOLUTION=QUEUE"):
        parse_queue_routes(value)


@pytest.mark.parametrize(
    ("resolution", "queue"), [(512, "gpu"), (576, "gpu-24gb"), (767, "gpu-24gb"), (1024, "gpu-80gb")]
)
def test_queue_for_takes_the_highest_route_reached(resolution: int, queue: str) -> None:
    routes = parse_queue_routes("576=gpu-24gb,768=gpu-80gb")
    assert queue_for(resolution, routes) == queue


def test_queue_for_defaults_to_the_gpu_queue() -> None:
    assert queue_for(1024, []) == GPU_QUEUE
