"""The tiny YOLOX-shaped detector: exactly one person on any textured image, none on a flat one."""

import numpy as np
import onnx
from onnx import TensorProto

from core.models.tiny.onnx_graph import Graph

# Detector head (stride-32 grid only; the stride-8 and -16 anchors never score).
DETECTOR_SIZE = 640
DETECTOR_STRIDES = (8, 16, 32)
_PAD_VALUE = 114.0  # letterbox canvas colour: excluded from the texture measure
_TEXTURE_THRESHOLD = 2.0  # grey-level std of the most textured 32x32 cell at which objectness is 0.5
_TEXTURE_GAIN = 3.0
_BUMP_SIGMA_CELLS = 0.7  # objectness falls off around the contrast centroid
_BOX_SPREAD = 3.2  # box side = 3.2 * std of the contrast's spatial spread (a uniform spread covers ~its extent)
_PERSON_PROBABILITY = 0.95
_OTHER_CLASS_PROBABILITY = 0.02  # * objectness <= 0.02, below the 0.1 NMS threshold


def build_detector() -> onnx.ModelProto:
    """A YOLOX-shaped detector: "images" (1, 3, 640, 640) 0..255 -> "output" (1, 8400, 85).

    Only the 20x20 stride-32 anchors can score. Per cell: the grey-level variance of the non-padding
    pixels (1). Objectness = sigmoid(gain * (max cell std - threshold)) (2) times a Gaussian bump around
    the variance-weighted centroid of the cells (3). Every cell predicts the same box, centred on that
    centroid and sized by the spread of the variance (4), so the cells above the NMS threshold overlap
    fully and one person survives NMS; a flat image has zero variance everywhere and no detection.
    """
    g = Graph()
    cells = DETECTOR_SIZE // DETECTOR_STRIDES[-1]
    stride = DETECTOR_STRIDES[-1]
    # 1. Texture per cell, from the pixels that are not the letterbox padding.
    is_pad = g.op("Cast", g.op("Equal", "images", g.const(_PAD_VALUE)), to=TensorProto.FLOAT)
    valid = g.op("Sub", g.const(1.0), g.op("ReduceMin", is_pad, axes=[1], keepdims=1))  # (1, 1, 640, 640)
    grey = g.op("Sub", g.op("ReduceMean", "images", axes=[1], keepdims=1), g.const(128.0))  # centred: less rounding
    valid_grey = g.op("Mul", valid, grey)

    def cell_mean(values: str) -> str:
        return g.op("AveragePool", values, kernel_shape=[stride, stride], strides=[stride, stride])

    count = g.op("Max", cell_mean(valid), g.const(1e-6))  # (1, 1, 20, 20)
    mean = g.op("Div", cell_mean(valid_grey), count)
    mean_square = g.op("Div", cell_mean(g.op("Mul", valid_grey, grey)), count)
    variance = g.op("Relu", g.op("Sub", mean_square, g.op("Mul", mean, mean)))
    std = g.op("Sqrt", variance)  # (1, 1, 20, 20)
    # 2. Is there any texture at all?
    texture = g.op("ReduceMax", std, keepdims=1)  # (1, 1, 1, 1)
    presence = g.op("Sigmoid", g.op("Mul", g.op("Sub", texture, g.const(_TEXTURE_THRESHOLD)), g.const(_TEXTURE_GAIN)))
    # 3. Centroid and spread of the texture, in cells (cell i spans [i, i + 1)).
    index = np.arange(cells, dtype=np.float32)
    grid_x = g.const(np.broadcast_to(index[None, :], (cells, cells))[None, None])
    grid_y = g.const(np.broadcast_to(index[:, None], (cells, cells))[None, None])
    centre_x_cells = g.const(np.broadcast_to(index[None, :] + 0.5, (cells, cells))[None, None])
    centre_y_cells = g.const(np.broadcast_to(index[:, None] + 0.5, (cells, cells))[None, None])
    # Variance weights let strong contrast (a figure) outweigh mild texture (a noisy background).
    total = g.op("Add", g.op("ReduceSum", variance, keepdims=1), g.const(1e-6))

    def weighted_mean(values: str) -> str:
        return g.op("Div", g.op("ReduceSum", g.op("Mul", variance, values), keepdims=1), total)

    centroid_x, centroid_y = weighted_mean(centre_x_cells), weighted_mean(centre_y_cells)
    dx, dy = g.op("Sub", centre_x_cells, centroid_x), g.op("Sub", centre_y_cells, centroid_y)
    spread_x = g.op("Sqrt", weighted_mean(g.op("Mul", dx, dx)))
    spread_y = g.op("Sqrt", weighted_mean(g.op("Mul", dy, dy)))
    distance_sq = g.op("Add", g.op("Mul", dx, dx), g.op("Mul", dy, dy))
    bump = g.op("Exp", g.op("Mul", distance_sq, g.const(-0.5 / _BUMP_SIGMA_CELLS**2)))
    objectness = g.op("Mul", presence, bump)  # (1, 1, 20, 20)
    # 4. The shared box, in YOLOX's encoding: xy = (out + grid) * stride, wh = exp(out) * stride. It is
    #    clipped to the image (the non-padding extent), as a real detector's boxes mostly are.
    shape = g.const([1, 1, cells, cells], dtype=np.int64)

    def box_axis(centroid: str, spread: str, grid: str, across_axis: int) -> tuple[str, str]:
        """(centre out, size out) along one axis, both (1, 1, 20, 20)."""
        extent = g.op("ReduceSum", g.op("ReduceMax", count, axes=[across_axis], keepdims=1), keepdims=1)
        half = g.op("Add", g.op("Mul", spread, g.const(_BOX_SPREAD / 2)), g.const(0.25))
        low = g.op("Max", g.op("Sub", centroid, half), g.const(0.0))
        high = g.op("Min", g.op("Add", centroid, half), extent)
        centre = g.op("Mul", g.op("Add", low, high), g.const(0.5))
        size = g.op("Max", g.op("Sub", high, low), g.const(0.25))
        return g.op("Sub", centre, grid), g.op("Expand", g.op("Log", size), shape)

    out_x, out_w = box_axis(centroid_x, spread_x, grid_x, across_axis=2)
    out_y, out_h = box_axis(centroid_y, spread_y, grid_y, across_axis=3)
    classes = np.full((1, 80, 1, 1), _OTHER_CLASS_PROBABILITY, dtype=np.float32)
    classes[0, 0] = _PERSON_PROBABILITY
    head = g.op(
        "Concat",
        out_x,
        out_y,
        out_w,
        out_h,
        objectness,
        g.op("Expand", g.const(classes), g.const([1, 80, cells, cells], dtype=np.int64)),
        axis=1,
    )  # (1, 85, 20, 20)
    head = g.op("Transpose", g.op("Reshape", head, g.const([1, 85, cells * cells], dtype=np.int64)), perm=[0, 2, 1])
    # The stride-8 and stride-16 anchors (80x80 + 40x40) come first, with objectness 0.
    num_fine = sum((DETECTOR_SIZE // s) ** 2 for s in DETECTOR_STRIDES[:-1])
    fine = g.op("Expand", g.const(np.zeros((1, 1, 85))), g.const([1, num_fine, 85], dtype=np.int64))
    g.op("Concat", fine, head, axis=1, output="output")
    num_anchors = num_fine + cells * cells
    return g.model(
        "tiny_yolox",
        inputs=[("images", (1, 3, DETECTOR_SIZE, DETECTOR_SIZE))],
        outputs=[("output", (1, num_anchors, 85))],
    )
