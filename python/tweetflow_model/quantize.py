"""Dynamic int8 quantization of the encoder: int8 weights per output channel, activations
quantized per token at run time.

Every ``MatMul(x, W)`` whose ``W`` is a 2-D initializer becomes, with ``x`` seen as rows
[M, K] (M = the product of its leading dimensions)::

    s   = max(|x|, over the row) / 127                    one scale per token row, [M]
    q   = QuantizeLinear(x, s, 128, axis=0)                uint8, symmetric around 128
    y   = MatMulIntegerToFloat(q, Wq, 1, w_s, 128) * s     Wq int8 = round(W / w_s), per column

``MatMulIntegerToFloat`` is ONNX Runtime's int8 GEMM (domain ``com.microsoft``) that applies
the column scales in its epilogue; the row scales follow in one multiply.

ONNX Runtime's ``quantize_dynamic`` uses ``DynamicQuantizeLinear``, whose scale is computed
over the whole activation tensor: a text's result then depends on the other texts of its
batch and on their padding (on the real model, 20 of 300 test tweets changed label between
batch 1 and batch 32). With one scale per token row, every row is quantized alone, so a
text's embedding is the same whatever it is batched with (up to float rounding in the
unquantized attention), and the per-row scale also tracks the fp32 model more closely.
Attention score products (``MatMul`` of two activations) stay in float32. Embedding tables
(``Gather`` of a 2-D initializer) are stored as int8 with one scale per row (per token).

    python -m tweetflow_model.quantize --in encoder.onnx --out encoder.int8.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QMAX = 127.0
ZERO_POINT = 128
SCALE_EPS = 1e-12
CONTRIB_DOMAIN = "com.microsoft"  # ONNX Runtime's operators (MatMulIntegerToFloat)  # scale floor: an all-zero row quantizes to zeros instead of dividing by 0


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output column: ``w ~= wq * scale``."""
    scale = np.maximum(np.abs(w).max(axis=0), SCALE_EPS) / QMAX
    wq = np.clip(np.round(w / scale), -QMAX, QMAX).astype(np.int8)
    return wq, scale.astype(np.float32)


def quantize_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Returns the quantized model and the number of MatMuls it quantized (embedding tables
    read by ``Gather`` are stored as int8 rows with one scale per row as well)."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = [numpy_helper.from_array(np.array(QMAX, np.float32), "q_qmax"),
              numpy_helper.from_array(np.array(SCALE_EPS, np.float32), "q_eps"),
              numpy_helper.from_array(np.array(1.0, np.float32), "q_one"),
              numpy_helper.from_array(np.array(ZERO_POINT, np.uint8), "q_zp"),
              numpy_helper.from_array(np.array([ZERO_POINT], np.uint8), "q_zp_1"),
              numpy_helper.from_array(np.array([0], np.int64), "q_start"),
              numpy_helper.from_array(np.array([-1], np.int64), "q_axes_last")]
    quantized_inputs: dict[str, tuple[str, str, str]] = {}  # activation -> (uint8 rows, row scales, lead shape)
    new_nodes, used_weights, count = [], set(), 0

    def node(op, inputs, output, domain=None, **attrs):
        new_nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def const(name, array):
        if not any(c.name == name for c in consts):
            consts.append(numpy_helper.from_array(array, name))
        return name

    def quantize_activation(x: str, k: int) -> tuple[str, str, str]:
        """``x`` [..., k] as uint8 rows [M, k] (M = product of the leading dims), their scales
        [M, 1], and the leading dims (to shape the product back)."""
        if x not in quantized_inputs:
            p = f"{x}_q"
            lead = node("Slice", [node("Shape", [x], p + "_shape"), "q_start", "q_axes_last"], p + "_lead")
            rows = node("Reshape", [x, const(f"q_rows_{k}", np.array([-1, k], np.int64))], p + "_rows")
            absmax = node("ReduceMax", [node("Abs", [rows], p + "_abs")], p + "_absmax", axes=[1], keepdims=0)
            scale = node("Div", [node("Max", [absmax, "q_eps"], p + "_absmax_eps"), "q_qmax"], p + "_scale")
            zero_points = node("Expand", ["q_zp_1", node("Shape", [scale], p + "_scale_shape")], p + "_zp")
            q = node("QuantizeLinear", [rows, scale, zero_points], p + "_u8", axis=0)
            quantized_inputs[x] = (q, node("Unsqueeze", [scale, "q_axes_last"], p + "_scale_col"), lead)
        return quantized_inputs[x]

    for n in graph.node:
        table = inits.get(n.input[0]) if n.op_type == "Gather" else None
        if table is not None and len(table.dims) == 2 and table.data_type == TensorProto.FLOAT \
                and all(a.name != "axis" or a.i == 0 for a in n.attribute):
            rows, row_scale = quantize_weight(numpy_helper.to_array(table).T)
            used_weights.add(table.name)
            consts += [numpy_helper.from_array(np.ascontiguousarray(rows.T), table.name + "_int8"),
                       numpy_helper.from_array(row_scale, table.name + "_scale")]
            out, ids = n.output[0], n.input[1]
            vectors = node("Cast", [node("Gather", [table.name + "_int8", ids], out + "_i8")], out + "_f32",
                           to=TensorProto.FLOAT)
            scales = node("Unsqueeze", [node("Gather", [table.name + "_scale", ids], out + "_row_scale"),
                                        "q_axes_last"], out + "_row_scale_1")
            new_nodes.append(helper.make_node("Mul", [vectors, scales], [out], name=out + "_dequant"))
            continue
        w = inits.get(n.input[1]) if n.op_type == "MatMul" and len(n.input) == 2 else None
        if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT:
            new_nodes.append(n)
            continue
        count += 1
        wq, w_scale = quantize_weight(numpy_helper.to_array(w))
        used_weights.add(w.name)
        consts += [numpy_helper.from_array(wq, w.name + "_int8"),
                   numpy_helper.from_array(w_scale, w.name + "_scale")]
        k, n_out = w.dims
        q, scale_col, lead = quantize_activation(n.input[0], k)
        out = n.output[0]
        # int8 GEMM with the column scales applied in its epilogue, then the row scales.
        acc = node("MatMulIntegerToFloat", [q, w.name + "_int8", "q_one", w.name + "_scale", "q_zp"],
                   out + "_cols", domain=CONTRIB_DOMAIN)
        scaled = node("Mul", [acc, scale_col], out + "_scaled")
        shape = node("Concat", [lead, const(f"q_n_{n_out}", np.array([n_out], np.int64))], out + "_shape", axis=0)
        new_nodes.append(helper.make_node("Reshape", [scaled, shape], [out], name=out + "_dequant"))

    still_used = {i for nd in new_nodes for i in nd.input}
    kept = [t for t in graph.initializer if t.name not in used_weights or t.name in still_used]
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + consts)
    if count and not any(o.domain == CONTRIB_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    onnx.checker.check_model(model)
    return model, count


def quantize(src: Path, dst: Path) -> int:
    """Quantizes the model at ``src`` into ``dst``; returns the number of quantized MatMuls."""
    model, count = quantize_model(onnx.load(str(src)))
    if count == 0:
        raise ValueError(f"{src}: no MatMul with a 2-D float initializer to quantize")
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return count


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="src", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    count = quantize(a.src, a.out)
    print(f"quantize: {count} MatMuls quantized, wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
