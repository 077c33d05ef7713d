"""The tiny DWPose-shaped SimCC pose model: the whole-body template, shifted toward the crop's texture and
scored by how much texture there is.
"""

import numpy as np
import onnx
from onnx import TensorProto

from core.models.tiny.onnx_graph import Graph
from core.models.tiny.wholebody_template import NUM_KEYPOINTS, POSE_INPUT_HW, keypoint_scores, wholebody_template

# Pose model: SimCC with split ratio 2 on a 288x384 (w x h) crop.
SIMCC_SPLIT_RATIO = 2
_PIXEL_MEAN = np.array([123.675, 116.28, 103.53])
_PIXEL_STD = np.array([58.395, 57.12, 57.375])
_BORDER_MARGIN_PX = 8  # texture within this distance of the crop's black border is ignored
_POSE_TEXTURE_THRESHOLD = 0.004  # mean |gradient| (normalised units) at which scores are halved
_POSE_TEXTURE_GAIN = 1500.0
_OFFSET_GAIN = 0.25  # keypoints follow the crop's texture centroid by this fraction...
_OFFSET_LIMIT_PX = 8.0  # ...up to this many crop pixels
_SIMCC_SLOPE = 0.004  # simcc value drop per bin away from the keypoint location


def build_pose_model() -> onnx.ModelProto:
    """A DWPose-shaped SimCC model: "input" (1, 3, 384, 288) -> "simcc_x" (1, 133, 576), "simcc_y" (1, 133, 768).

    simcc = score_k - slope * |bin - location_k|, so argmax = location and max = score. The location is
    a whole-body template shifted toward the texture centroid of the crop (1-3); the score is the
    template score times sigmoid(gain * (mean |gradient| - threshold)) (4), so a flat crop (the black
    border of the crop excluded) scores near zero.
    """
    g = Graph()
    height, width = POSE_INPUT_HW
    # 1. Valid pixels: not the crop's constant-0 border (normalised), nor within a margin of it, since
    #    bilinear warping blends the border into the image over up to one source pixel.
    border = ((0.0 - _PIXEL_MEAN) / _PIXEL_STD).reshape(1, 3, 1, 1)
    near_border = g.op("Less", g.op("Abs", g.op("Sub", "input", g.const(border))), g.const(1e-3))
    is_border = g.op("ReduceMin", g.op("Cast", near_border, to=TensorProto.FLOAT), axes=[1], keepdims=1)
    margin = _BORDER_MARGIN_PX
    # Pad with 1 so the crop's own frame counts as border too.
    padded = g.op("Pad", is_border, g.const([0, 0, margin, margin, 0, 0, margin, margin], dtype=np.int64), g.const(1.0))
    invalid = g.op("MaxPool", padded, kernel_shape=[2 * margin + 1, 2 * margin + 1])  # (1, 1, 384, 288)
    valid = g.op("Sub", g.const(1.0), invalid)
    # 2. Texture energy: |central difference| in x and y of the grey image, on valid pixels only.
    grey = g.op("ReduceMean", "input", axes=[1], keepdims=1)
    kernels = np.zeros((2, 1, 3, 3), dtype=np.float32)
    kernels[0, 0, 1] = [-0.5, 0.0, 0.5]
    kernels[1, 0, :, 1] = [-0.5, 0.0, 0.5]
    gradients = g.op("Abs", g.op("Conv", grey, g.const(kernels), pads=[1, 1, 1, 1]))  # (1, 2, 384, 288)
    energy = g.op("Mul", g.op("ReduceSum", gradients, g.const([1], dtype=np.int64), keepdims=1), valid)
    total = g.op("ReduceSum", energy, keepdims=1)  # (1, 1, 1, 1)
    # 3. Offset toward the energy centroid (the crop centre when there is no energy).
    eps = 1e-6

    def offset(axis: int, size: int) -> str:
        """Shift along ``axis`` (3: x, 2: y): the energy profile along it, summed over the other axis."""
        profile = g.op("ReduceSum", energy, g.const([5 - axis], dtype=np.int64), keepdims=1)
        coordinates = np.arange(size, dtype=np.float32).reshape([1] * axis + [size] + [1] * (3 - axis))
        middle = (size - 1) / 2  # the crop centre in pixel-index coordinates
        moment = g.op("ReduceSum", g.op("Mul", profile, g.const(coordinates)), keepdims=1)
        centroid = g.op("Div", g.op("Add", moment, g.const(eps * middle)), g.op("Add", total, g.const(eps)))
        shift = g.op("Mul", g.op("Sub", centroid, g.const(middle)), g.const(_OFFSET_GAIN))
        shift = g.op("Clip", shift, g.const(-_OFFSET_LIMIT_PX), g.const(_OFFSET_LIMIT_PX))
        return g.op("Reshape", shift, g.const([1, 1, 1], dtype=np.int64))  # (1, 1, 1) crop pixels

    shift_x, shift_y = offset(axis=3, size=width), offset(axis=2, size=height)
    # 4. Scores: the template's, gated by the mean texture energy.
    count = g.op("Add", g.op("ReduceSum", valid, keepdims=1), g.const(1.0))
    mean_energy = g.op("Div", total, count)
    gate = g.op(
        "Sigmoid", g.op("Mul", g.op("Sub", mean_energy, g.const(_POSE_TEXTURE_THRESHOLD)), g.const(_POSE_TEXTURE_GAIN))
    )
    scores = g.op(
        "Mul", g.const(keypoint_scores().reshape(1, -1, 1)), g.op("Reshape", gate, g.const([1, 1, 1], dtype=np.int64))
    )
    template = wholebody_template()

    def simcc(column: int, shift: str, num_bins: int, output: str) -> None:
        location = g.op("Add", g.const(template[:, column].reshape(1, -1, 1)), shift)  # (1, 133, 1) pixels
        bins = g.const(np.arange(num_bins, dtype=np.float32).reshape(1, 1, -1) / SIMCC_SPLIT_RATIO)
        distance = g.op("Abs", g.op("Sub", bins, location))  # (1, 133, bins), in pixels
        g.op("Sub", scores, g.op("Mul", distance, g.const(_SIMCC_SLOPE * SIMCC_SPLIT_RATIO)), output=output)

    simcc(0, shift_x, width * SIMCC_SPLIT_RATIO, "simcc_x")
    simcc(1, shift_y, height * SIMCC_SPLIT_RATIO, "simcc_y")
    return g.model(
        "tiny_dwpose",
        inputs=[("input", (1, 3, height, width))],
        outputs=[
            ("simcc_x", (1, NUM_KEYPOINTS, width * SIMCC_SPLIT_RATIO)),
            ("simcc_y", (1, NUM_KEYPOINTS, height * SIMCC_SPLIT_RATIO)),
        ],
    )
