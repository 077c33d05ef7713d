"""Schemathesis against the committed openapi.yaml and the real gateway: no request makes it answer 5xx.

The gateway runs as a subprocess on 127.0.0.1 with its own redis-server and no worker, so /readyz (503
by design without a live worker) is left out. Generation is derandomized: the same examples every run.
"""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.support.redis_server import redis_server
from tests.support.service_stack import REPO_ROOT, stack_env, start_stack

pytestmark = pytest.mark.e2e

API_KEY = "schemathesis-key"


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("schemathesis")
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(root))
        env = stack_env(redis_url=redis_url, data_dir=root / "data", model_dir=tiny_model_dir, api_keys=API_KEY)
        yield start_stack(stack, env, root, workers=[]).base_url


def test_gateway_never_answers_5xx(gateway_url: str) -> None:
    # Hypothesis drives each operation's strategy directly (schemathesis' pytest plugin does not load
    # under this pytest); derandomize fixes the examples.
    schema = schemathesis.openapi.from_path(REPO_ROOT / "openapi.yaml").exclude(path="/readyz")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=gateway_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
            statuses.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()
    assert len(statuses) >= 100 and max(statuses) < 500  # requests were really made, none answered 5xx
