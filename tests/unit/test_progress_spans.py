"""Progress fractions per stage, and the throttle of progress writes and job.progress webhooks."""

import itertools

import pytest

from core.contract.stages import Stage
from core.execution.progress import STAGE_SPANS, Throttle, stage_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stage_spans_follow_the_stages_in_order_from_zero_to_one_without_gaps() -> None:
    spans = [STAGE_SPANS[stage] for stage in Stage]
    assert spans[0][0] == 0.0 and spans[-1][1] == 1.0
    assert all(start < end for start, end in spans)
    assert all(previous[1] == following[0] for previous, following in itertools.pairwise(spans))


def test_stage_progress_places_a_step_within_its_stage_span() -> None:
    assert stage_progress(Stage.denoising, 7, 10).fraction == pytest.approx(0.15 + 0.7 * 0.7)
    assert stage_progress(Stage.conditioning, 0, 1).fraction == 0.12
    assert stage_progress(Stage.uploading, 1, 1).fraction == 1.0
    progress = stage_progress(Stage.pose, 0, 0)  # no steps: the stage's start
    assert (progress.stage, progress.step, progress.total_steps, progress.fraction) == (Stage.pose, 0, 0, 0.05)


def test_throttle_passes_once_per_interval_unless_forced() -> None:
    clock = FakeClock()
    throttle = Throttle(0.25, clock)
    passed = []
    for now, force in [(0.0, False), (0.1, False), (0.2, True), (0.3, False), (0.44, False), (0.45, False)]:
        clock.now = now
        passed.append(throttle.passes(force=force))
    assert passed == [True, False, True, False, False, True]


def test_throttle_with_min_growth_waits_for_both_the_interval_and_the_growth() -> None:
    clock = FakeClock()
    throttle = Throttle(5.0, clock, min_growth=0.1)
    passed = []
    # too little growth; passes; too soon; enough time but too little growth; passes
    for now, fraction in [(10.0, 0.05), (10.0, 0.1), (12.0, 0.25), (20.0, 0.15), (20.0, 0.25)]:
        clock.now = now
        passed.append(throttle.passes(fraction))
    assert passed == [False, True, False, False, True]
