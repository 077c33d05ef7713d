"""make_batch_dynamic: which Reshape targets it frees, and what it leaves alone, on graphs built here."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.pose.batching import BATCH_DIM, BatchRewriteError, make_batch_dynamic


def _model(
    nodes: list[onnx.NodeProto], initializers: dict[str, np.ndarray], output_shape: list[int]
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return onnx.shape_inference.infer_shapes(model)  # fills value_info, as exported files have it


def _target(model: onnx.ModelProto, node_index: int) -> list[int]:
    name = model.graph.node[node_index].input[1]
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t).tolist()
    return values[name].tolist()


def _shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


def test_make_batch_dynamic_frees_dim_0_of_inputs_and_outputs_and_drops_value_info() -> None:
    shape = np.array([1, 24], dtype=np.int64)
    model = _model([helper.make_node("Reshape", ["x", "shape"], ["y"])], {"shape": shape}, [1, 24])
    model.graph.value_info.append(helper.make_tensor_value_info("stale", TensorProto.FLOAT, [1, 5]))
    batched = make_batch_dynamic(model)
    assert _shape(batched.graph.input[0]) == [BATCH_DIM, 2, 3, 4]
    assert _shape(batched.graph.output[0]) == [BATCH_DIM, 24]
    assert len(batched.graph.value_info) == 0
    assert _target(batched, 0) == [0, 24]
    # The original is a separate copy, untouched.
    assert _shape(model.graph.input[0]) == [1, 2, 3, 4] and _target(model, 0) == [1, 24]


def test_make_batch_dynamic_frees_a_reshape_after_a_freed_reshape_and_a_constant_node_target() -> None:
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["flat_x"]),  # (1, 24)
        helper.make_node("Relu", ["flat_x"], ["relu"]),
        helper.make_node("Constant", [], ["split"], value=numpy_helper.from_array(np.array([1, 6, 4], dtype=np.int64))),
        # Its data carries the batch only once the first Reshape is freed: a second pass.
        helper.make_node("Reshape", ["relu", "split"], ["y"]),  # (1, 6, 4)
    ]
    model = _model(nodes, {"flat": np.array([1, 24], dtype=np.int64)}, [1, 6, 4])
    batched = make_batch_dynamic(model)
    assert _target(batched, 0) == [0, 24]
    assert _target(batched, 3) == [0, 6, 4]
    # And it runs: three samples at once give each sample's own result.
    session = ort.InferenceSession(batched.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.maximum(x, 0).reshape(3, 6, 4))


def test_make_batch_dynamic_uses_minus_one_under_allowzero_and_leaves_a_second_minus_one() -> None:
    nodes = [
        helper.make_node("Reshape", ["x", "plain"], ["a"], allowzero=1),  # (1, 24) -> (-1, 24)
        helper.make_node("Reshape", ["a", "open"], ["y"], allowzero=1),  # (1, -1): no room for a second -1
    ]
    initializers = {"plain": np.array([1, 24], dtype=np.int64), "open": np.array([1, -1], dtype=np.int64)}
    batched = make_batch_dynamic(_model(nodes, initializers, [1, 24]))
    assert _target(batched, 0) == [-1, 24]
    assert _target(batched, 1) == [1, -1]


def test_make_batch_dynamic_leaves_reshapes_of_weights_and_of_non_leading_ones() -> None:
    # One shape constant shared by a Reshape of the input and a Reshape of a weight: only the first is
    # freed, through a copy of the constant.
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["a"]),
        helper.make_node("Reshape", ["weight", "shape"], ["w"]),  # (1, 24) whatever the batch
        helper.make_node("Add", ["a", "w"], ["b"]),
        helper.make_node("Reshape", ["b", "columns"], ["y"]),  # (24, 1): dim 0 is not the batch
    ]
    initializers: dict[str, np.ndarray] = {
        "shape": np.array([1, 24], dtype=np.int64),
        "weight": np.ones((2, 12), dtype=np.float32),
        "columns": np.array([24, 1], dtype=np.int64),
    }
    batched = make_batch_dynamic(_model(nodes, initializers, [24, 1]))
    assert _target(batched, 0) == [0, 24]
    assert batched.graph.node[1].input[1] == "shape" and _target(batched, 1) == [1, 24]
    assert _target(batched, 3) == [24, 1]


def test_make_batch_dynamic_refuses_an_output_without_a_shape() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])], {}, [1, 2, 3, 4])
    model.graph.output[0].type.tensor_type.ClearField("shape")
    with pytest.raises(BatchRewriteError, match="y has no shape"):
        make_batch_dynamic(model)
