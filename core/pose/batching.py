"""Dynamic-batch copies of static-batch ONNX graphs, made in memory and used only once checked.

The released DWPose files fix the batch at 1. ``make_batch_dynamic`` frees dim 0 of a copy of the graph;
``check_batched`` runs both graphs on the same inputs and says why they differ, if they do. Neither
writes a file: users' model files stay as they are.
"""

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

BATCH_DIM = "batch"  # the symbolic name given to dim 0 of the graph inputs and outputs
# Dim 0 the graph inputs get while shape inference traces which tensors carry the batch: a size no real
# tensor of these models has at dim 0, and one that shape inference carries through ops (Resize, for one)
# whose output it leaves unknown for a symbolic dim.
_PROBE_BATCH = 9973
_PROBE_MAX_CONSTANT = 64  # float constants above this many elements are weights to the probe
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)
VERIFY_BATCH = 3  # inputs per check: odd, so kernels with a tail for odd batches are covered too
VERIFY_SEED = 0
# Batched kernels block their sums differently from batch-1 kernels (GEMM tiling on CPU; other cuDNN
# algorithms and TF32 on GPU), so the two runs round differently: about 1e-6 of the output's scale on
# CPU, up to about 1e-3 with TF32 through a deep network. A graph that still assumes batch 1 (a reduction
# or reshape across the batch, a row broadcast from sample 0) is off by the size of the signal itself on
# these deliberately different inputs. 1 % of the output's largest magnitude lies between the two.
VERIFY_TOLERANCE = 1e-2


class BatchRewriteError(ValueError):
    """The graph cannot be given a dynamic batch (an input or output without a shape, say)."""


def make_batch_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with a symbolic batch in dim 0 of its inputs and outputs.

    Intermediate shapes (``graph.value_info``) are dropped, and every Reshape whose data carries the batch
    in dim 0 and whose constant target shape starts with 1 gets 0 there (copy the input's dim 0; -1 when
    the node has ``allowzero=1``). Other batch-1 assumptions stay: ``check_batched`` finds them.

    Raises:
        BatchRewriteError: an input or output has no shape to free.
    """
    batched = onnx.ModelProto()
    batched.CopyFrom(model)
    graph = batched.graph
    del graph.value_info[:]
    for value in (*_data_inputs(graph), *graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 0:
            raise BatchRewriteError(f"{value.name} has no shape")
        dims[0].dim_param = BATCH_DIM
    # Each pass frees the Reshapes that the batch reaches so far; a freed Reshape passes the batch on to
    # the ones after it, so repeat until nothing changes. The passes run on a probe without the weights.
    probe = _shape_probe(batched)
    replaced: set[str] = set()
    while _free_reshapes(probe, replaced):
        pass
    # Carry the probe's nodes (some now read freed targets) and its freed targets over.
    known = {initializer.name for initializer in graph.initializer}
    del graph.node[:]
    graph.node.extend(probe.graph.node)
    graph.initializer.extend(initializer for initializer in probe.graph.initializer if initializer.name not in known)
    # Shape constants left without a user would only make onnxruntime warn that it removes them.
    unused = replaced - _used_names(graph)
    kept = [initializer for initializer in graph.initializer if initializer.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return batched


def check_batched(
    single: ort.InferenceSession,
    batched: ort.InferenceSession,
    input_range: tuple[float, float],
    batch_size: int = VERIFY_BATCH,
) -> str | None:
    """Run ``batched`` on ``batch_size`` inputs at once and ``single`` on each alone.

    Inputs are seeded uniform noise in ``input_range``, each sample around a different level, so a
    graph that mixes samples gives visibly different outputs.

    Returns:
        None when every output has the same shape and agrees within VERIFY_TOLERANCE of its largest
        magnitude; otherwise why not, in a few words.
    """
    feeds = _sample_inputs(single, input_range, batch_size)
    singles = [single.run(None, {name: value[i : i + 1] for name, value in feeds.items()}) for i in range(batch_size)]
    # A graph that fails batched is an expected outcome here, reported by our caller: keep onnxruntime
    # from also logging it as an error.
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # fatal only
    outputs = batched.run(None, feeds, quiet)
    for index, output in enumerate(outputs):
        name = single.get_outputs()[index].name
        expected = np.concatenate([run[index] for run in singles])
        if output.shape != expected.shape:
            return f"output {name} is {list(output.shape)} for a batch of {batch_size}, not {list(expected.shape)}"
        scale = float(np.abs(expected).max()) if expected.size else 0.0
        error = float(np.abs(output.astype(np.float64) - expected).max()) if expected.size else 0.0
        if not error <= VERIFY_TOLERANCE * max(scale, 1e-6):
            return f"output {name} differs by up to {error:.3g} (largest value {scale:.3g}) when batched"
    return None


def _free_reshapes(model: onnx.ModelProto, replaced: set[str]) -> bool:
    """Give 0 (or -1) to the leading 1 of Reshape targets whose data carries the probe batch; any changed?

    The names of the targets replaced are added to ``replaced``.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    leading_dims = {
        value.name: value.type.tensor_type.shape.dim[0].dim_value
        for value in (*inferred.graph.value_info, *inferred.graph.input)
        if len(value.type.tensor_type.shape.dim) > 0
    }
    constants = _constant_values(model.graph)
    changed = False
    for node in model.graph.node:
        if node.op_type != "Reshape" or leading_dims.get(node.input[0]) != _PROBE_BATCH:
            continue
        target = constants.get(node.input[1])
        if target is None or target.ndim != 1 or target.size == 0 or target[0] != 1:
            continue
        allow_zero = any(attribute.name == "allowzero" and attribute.i == 1 for attribute in node.attribute)
        if allow_zero and -1 in target:
            continue  # 0 would mean an empty dim and a second -1 is not allowed: leave it to the check
        freed = target.copy()
        freed[0] = -1 if allow_zero else 0
        name = f"{node.input[1]}/{BATCH_DIM}"
        if name not in constants:
            model.graph.initializer.append(numpy_helper.from_array(freed, name))
            constants[name] = freed
        replaced.add(node.input[1])
        node.input[1] = name
        changed = True
    return changed


def _data_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    # Before IR 4 initializers are listed among the inputs too; they are not fed.
    initializer_names = {initializer.name for initializer in graph.initializer}
    return [value for value in graph.input if value.name not in initializer_names]


def _shape_probe(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with _PROBE_BATCH in dim 0 of its inputs and its large float weights as graph inputs.

    Shape inference serialises the whole model on every call; it needs only the weights' shapes, and
    the values of the integer tensors (shapes, axes) and of small constants.
    """
    graph = model.graph
    is_weight = {
        initializer.name: initializer.data_type in _FLOAT_TYPES and int(np.prod(initializer.dims)) > _PROBE_MAX_CONSTANT
        for initializer in graph.initializer
    }
    listed = {value.name for value in graph.input}
    weight_inputs = [
        onnx.helper.make_tensor_value_info(initializer.name, initializer.data_type, list(initializer.dims))
        for initializer in graph.initializer
        if is_weight[initializer.name] and initializer.name not in listed
    ]
    probe = onnx.helper.make_model(
        onnx.helper.make_graph(
            graph.node,
            graph.name,
            [*graph.input, *weight_inputs],
            graph.output,
            [initializer for initializer in graph.initializer if not is_weight[initializer.name]],
        ),
        opset_imports=model.opset_import,
        ir_version=model.ir_version,
        functions=model.functions,
    )
    for value in _data_inputs(probe.graph):
        if not is_weight.get(value.name, False):
            value.type.tensor_type.shape.dim[0].dim_value = _PROBE_BATCH
    return probe


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Every name a node of ``graph`` or of its subgraphs (If, Loop, Scan bodies) reads, or an output."""
    names = {output.name for output in graph.output}
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            for subgraph in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                names |= _used_names(subgraph)
    return names


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs (tensor-valued only), by name."""
    values = {initializer.name: numpy_helper.to_array(initializer) for initializer in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _sample_inputs(
    session: ort.InferenceSession, input_range: tuple[float, float], batch_size: int
) -> dict[str, np.ndarray]:
    """(batch_size, ...) float32 per input: sample k centred on its own level, with noise of its own amplitude."""
    rng = np.random.default_rng(VERIFY_SEED)
    low, high = input_range
    feeds = {}
    for arg in session.get_inputs():
        if arg.type != "tensor(float)":
            raise BatchRewriteError(f"input {arg.name} is {arg.type}, not float32")
        shape = _static_shape(arg.name, arg.shape)
        levels = (np.arange(batch_size) + 1.0) / (batch_size + 1)  # e.g. 1/4, 1/2, 3/4
        amplitudes = np.minimum(levels, 1 - levels) * (np.arange(batch_size) + 1.0) / batch_size
        noise = rng.uniform(-1.0, 1.0, size=(batch_size, *shape[1:]))
        unit = levels.reshape(-1, *[1] * (len(shape) - 1)) + amplitudes.reshape(-1, *[1] * (len(shape) - 1)) * noise
        feeds[arg.name] = (low + (high - low) * unit).astype(np.float32)
    return feeds


def _static_shape(name: str, shape: Sequence[int | str | None]) -> tuple[int, ...]:
    sizes = tuple(dim for dim in shape if isinstance(dim, int))
    if len(sizes) != len(shape):
        raise BatchRewriteError(f"input {name} has the free dims {list(shape)}: no size to check it at")
    return sizes
