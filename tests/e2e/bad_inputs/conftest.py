"""One bad-input stack for the package: the job, request and guard tests share it."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.bad_inputs.world import World, bad_input_world


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[World]:
    with bad_input_world(tmp_path_factory.mktemp("bad-inputs"), tiny_model_dir) as started:
        yield started
