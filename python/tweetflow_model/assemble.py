"""Assembles the model directory (Hugging Face / optimum layout).

    model.onnx      int8 encoder + head (MatMul + Add) + Softmax:
                    inputs  input_ids, attention_mask, token_type_ids  int64 [batch, sequence]
                    output  probabilities  float32 [batch, 3], classes [NEG, NEU, POS]
    tokenizer.json  padding to the longest text of the batch, truncation at 128 tokens
    config.json     BERT config + id2label / label2id + neutral_band (see tweetflow_model.head)
    manifest.json   SHA-256 and size of every other file

    python -m tweetflow_model.assemble --encoder encoder.int8.onnx --head head.json --out DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import LABELS, MAX_LENGTH, head
from .common import load_tokenizer, minilm_dir, write_json, write_manifest
from .export import EMBEDDING_OUTPUT

OUTPUT = "probabilities"


def append_head(encoder: onnx.ModelProto, w: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """Replaces the encoder's embedding output by softmax(embedding @ w + b)."""
    g = encoder.graph
    if [o.name for o in g.output] != [EMBEDDING_OUTPUT]:
        raise ValueError(f"encoder outputs {[o.name for o in g.output]}, expected [{EMBEDDING_OUTPUT}]")
    g.initializer.extend([numpy_helper.from_array(w.astype(np.float32), "head.weight"),
                          numpy_helper.from_array(b.astype(np.float32), "head.bias")])
    g.node.extend([
        helper.make_node("MatMul", [EMBEDDING_OUTPUT, "head.weight"], ["head_matmul"], name="head_MatMul"),
        helper.make_node("Add", ["head_matmul", "head.bias"], ["head_logits"], name="head_Add"),
        helper.make_node("Softmax", ["head_logits"], [OUTPUT], name="head_Softmax", axis=-1),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", w.shape[1]]))
    g.name = "tweet-sentiment"
    onnx.checker.check_model(encoder)
    return encoder


def model_config(base: dict, neutral_band: list[float], extra: dict | None = None) -> dict:
    cfg = dict(base)
    cfg.pop("_name_or_path", None)
    cfg.update({
        "architectures": ["BertModel"],
        "id2label": {str(i): l for i, l in enumerate(LABELS)},
        "label2id": {l: i for i, l in enumerate(LABELS)},
        "neutral_band": neutral_band,
        "onnx_inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "onnx_output": OUTPUT,
        "pooling": "mean",
        "normalize_embeddings": True,
        "max_length": MAX_LENGTH,
        **(extra or {}),
    })
    return cfg


def assemble(encoder_path: Path, head_path: Path, out: Path, base_dir: Path | None = None) -> None:
    base_dir = base_dir or minilm_dir()
    h = head.load(head_path)
    w, b = head.head3(h["coef"], h["intercept"], h["neutral_band"])
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():  # the directory holds exactly the files written here
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    model = append_head(onnx.load(str(encoder_path)), w, b)
    onnx.save(model, str(out / "model.onnx"))
    load_tokenizer(base_dir / "tokenizer.json").save(str(out / "tokenizer.json"))
    base = json.loads((base_dir / "config.json").read_text())
    write_json(out / "config.json", model_config(base, h["neutral_band"], {
        "neutral_rule": "informational, already applied in model.onnx: the argmax of probabilities is NEU "
                        "iff neutral_band[0] < p < neutral_band[1], where p is P(POS) of the binary "
                        "logistic-regression head; else NEG if p < 0.5, else POS",
        "encoder": "sentence-transformers/all-MiniLM-L6-v2, int8 dynamic quantization (per channel)",
    }))
    write_manifest(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", type=Path, required=True)
    ap.add_argument("--head", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    assemble(a.encoder, a.head, a.out)
    print(f"assemble: wrote {a.out} (model.onnx {(a.out / 'model.onnx').stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
