"""The hand edges' thickness-2 cv2.line, pixel for pixel as OpenCV 4.10 draws it (the original's OpenCV).

OpenCV 5 places other pixels where a thick line crosses the canvas edge, which hand edges do whenever a
hand point lies beyond the right or bottom border (issue 20). The expected pixel sets are a committed
fixture generated with opencv-python-headless 4.10.0.84; regenerate it only under that version with
    PYTHONPATH=. python -m tests.unit.test_pose_line_opencv4 --write
"""

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from core.pose.draw import HAND_LINE_THICKNESS

FIXTURE = Path(__file__).parent / "fixtures" / "opencv410_thick_lines.json"
CANVAS_HEIGHT, CANVAS_WIDTH = 48, 64
# (x, y) endpoints, all >= 1 as draw_hands requires: inside the canvas, then crossing its right or
# bottom edge (where OpenCV 5 departs), a single point, horizontal and vertical.
LINES = (
    ((3, 3), (60, 44)), ((10, 40), (50, 5)), ((20, 20), (20, 20)), ((5, 24), (58, 24)), ((32, 2), (32, 45)),
    ((1, 1), (2, 2)), ((6, 30), (29, 87)), ((47, 22), (84, 16)), ((85, 61), (12, 5)), ((45, 4), (15, 51)),
    ((27, 50), (38, 25)), ((99, 2), (10, 20)), ((72, 37), (49, 1)), ((62, 83), (66, 16)), ((70, 60), (90, 80)),
)  # fmt: skip


def drawn_pixels(start: tuple[int, int], end: tuple[int, int]) -> list[list[int]]:
    """[y, x] of every pixel the hand-edge line from start to end sets on a black canvas, row-major."""
    canvas = np.zeros((CANVAS_HEIGHT, CANVAS_WIDTH, 3), dtype=np.uint8)
    cv2.line(canvas, start, end, (255, 255, 255), thickness=HAND_LINE_THICKNESS)
    return np.argwhere(canvas.any(axis=-1)).tolist()


def test_the_fixture_was_drawn_on_this_canvas_with_these_lines() -> None:
    fixture = json.loads(FIXTURE.read_text())
    assert fixture["canvas"] == [CANVAS_HEIGHT, CANVAS_WIDTH]
    assert fixture["thickness"] == HAND_LINE_THICKNESS
    assert [tuple(map(tuple, (line["from"], line["to"]))) for line in fixture["lines"]] == list(LINES)


def test_thick_lines_set_exactly_the_opencv_4_10_pixels() -> None:
    fixture = json.loads(FIXTURE.read_text())
    for line in fixture["lines"]:
        start, end = tuple(line["from"]), tuple(line["to"])
        ours = drawn_pixels(start, end)
        missing = {tuple(p) for p in line["pixels"]} - {tuple(p) for p in ours}
        extra = {tuple(p) for p in ours} - {tuple(p) for p in line["pixels"]}
        assert ours == line["pixels"], f"{start} -> {end}: missing {sorted(missing)}, extra {sorted(extra)}"


def _write_fixture() -> None:
    assert cv2.__version__ == "4.10.0", f"the fixture is OpenCV 4.10's pixels, this is {cv2.__version__}"
    fixture = {
        "produced_by": f"python -m tests.unit.test_pose_line_opencv4 --write, opencv-python-headless 4.10.0.84 "
        f"(cv2 {cv2.__version__}), numpy {np.__version__}",
        "canvas": [CANVAS_HEIGHT, CANVAS_WIDTH],
        "thickness": HAND_LINE_THICKNESS,
        "lines": [{"from": list(a), "to": list(b), "pixels": drawn_pixels(a, b)} for a, b in LINES],
    }
    FIXTURE.parent.mkdir(exist_ok=True)
    lines = ",\n".join(json.dumps(line, separators=(",", ":")) for line in fixture.pop("lines"))
    header = json.dumps(fixture)[:-1]  # one line per line drawn, so a diff shows which line moved
    FIXTURE.write_text(f'{header},\n"lines": [\n{lines}\n]}}\n')


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    _write_fixture()
