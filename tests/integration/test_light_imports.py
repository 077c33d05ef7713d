"""Floors 1 and 3 (vocabulary and infrastructure, the job store included) load without torch, onnxruntime or av.

The gateway and the webhook worker import only these; a fresh interpreter shows what each pulls in.
"""

import subprocess
import sys

from tests.unit.test_layers import MODULES, ROOT, floor_of


def test_vocabulary_and_infrastructure_import_no_torch_onnxruntime_or_av() -> None:
    light = sorted(name for name, _ in MODULES if floor_of(name) in (1, 3))
    code = (
        "import importlib, sys\n"
        f"for name in {light!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'av', 'diffusers', 'cv2') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"a floor 1 or 3 module pulls in {result.stdout.strip()}"
