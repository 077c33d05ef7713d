"""StageTimer: seconds per Stage, with the device's queued work waited for inside the stage it belongs to."""

from core.contract.stages import Stage, StageTimer


class StepClock:
    """A clock that a synchronize call advances, as waiting for queued device work would."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stage_timer_keys_timings_by_stage_and_waits_for_the_device_inside_the_stage() -> None:
    clock, waits = StepClock(), list[str]()

    def device_wait() -> None:
        waits.append("device")
        clock.now += 2.0  # the queued GPU work finishes only now

    timer = StageTimer(clock, synchronize=device_wait)
    with timer.stage(Stage.denoising):
        clock.now += 1.0
    assert timer.timings == {"denoising": 3.0} and waits == ["device"]


def test_stage_timer_takes_a_stage_s_own_synchronize_in_place_of_its_default() -> None:
    clock, waits = StepClock(), list[str]()
    timer = StageTimer(clock)  # no device wait by default: encoding and upload queue no GPU work

    def device_wait() -> None:
        waits.append("device")
        clock.now += 0.5

    with timer.stage(Stage.encoding):
        clock.now += 1.0
    with timer.stage(Stage.decoding, synchronize=device_wait):
        clock.now += 1.0
    assert timer.timings == {"encoding": 1.0, "decoding": 1.5} and waits == ["device"]
