"""A small builder for hand-made ONNX graphs (opset 17), shared by the tiny detector and pose model."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_ONNX_OPSET = 17
_ONNX_IR_VERSION = 8  # the IR version that goes with opset 17


@dataclass
class Graph:
    """Accumulates nodes and constants; each op returns the name of its (single) output."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        name = f"const_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attributes: Any) -> str:
        output = output or f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def model(
        self,
        name: str,
        inputs: list[tuple[str, tuple[int, ...]]],
        outputs: list[tuple[str, tuple[int, ...]]],
    ) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in outputs],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph,
            producer_name="mimicmotion-tiny",
            opset_imports=[helper.make_opsetid("", _ONNX_OPSET)],
            ir_version=_ONNX_IR_VERSION,
        )
        onnx.checker.check_model(model, full_check=True)
        return model


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
