"""Export of the trained network to ONNX (built node by node) and the parity check.

The embedding table is stored as int8 with one float32 scale per row (symmetric, per-row
quantisation done here, not by ``onnxruntime.quantization``, whose dynamic mode does not
quantise a Gather-fed table this way); everything after the bag is float32. The graph:

    ids[N,L] int64, weights[N,L] float32
    q = Gather(table_q, ids) -> Cast float            [N,L,H]
    w = weights * Gather(row_scale, ids)              [N,L]
    h = Relu(Reshape(MatMul(w[:,None,:], q), [-1,H]) + bias)
    probs = Softmax(h @ W + c)                        [N,C]

The reference for the parity check is the PyTorch network with the de-quantised table, so
the check isolates the export (the quantisation effect is measured and reported separately).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def quantize_rows(
    table: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Symmetric per-row int8: table ~= q * scale[:, None]."""
    peak = np.abs(table).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def build_onnx(
    table_q: npt.NDArray[np.int8],
    row_scale: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    out_weight: npt.NDArray[np.float32],
    out_bias: npt.NDArray[np.float32],
    *,
    doc: str,
    metadata: dict[str, str] | None = None,
) -> bytes:
    """The serialized ONNX model (deterministic bytes for the same weights)."""
    dim = table_q.shape[1]
    classes = out_weight.shape[1]
    inits = [
        numpy_helper.from_array(table_q, "table_q"),
        numpy_helper.from_array(row_scale.astype(np.float32), "row_scale"),
        numpy_helper.from_array(bias.astype(np.float32), "bag_bias"),
        numpy_helper.from_array(out_weight.astype(np.float32), "out_weight"),
        numpy_helper.from_array(out_bias.astype(np.float32), "out_bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_1"),
        numpy_helper.from_array(np.array([-1, dim], dtype=np.int64), "flat_shape"),
    ]
    nodes = [
        helper.make_node("Gather", ["table_q", "ids"], ["rows_q"], axis=0),
        helper.make_node("Cast", ["rows_q"], ["rows"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["row_scale", "ids"], ["scales"], axis=0),
        helper.make_node("Mul", ["weights", "scales"], ["scaled"]),
        helper.make_node("Unsqueeze", ["scaled", "axis_1"], ["scaled3"]),
        helper.make_node("MatMul", ["scaled3", "rows"], ["bag3"]),
        helper.make_node("Reshape", ["bag3", "flat_shape"], ["bag"]),
        helper.make_node("Add", ["bag", "bag_bias"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "out_weight"], ["proj"]),
        helper.make_node("Add", ["proj", "out_bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "intent_text",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "features"]),
            helper.make_tensor_value_info("weights", TensorProto.FLOAT, ["batch", "features"]),
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edge-intent-gateway training/train_text.py",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    for key, value in sorted((metadata or {}).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()
