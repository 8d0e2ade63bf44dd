"""Builds a tiny 3-class sentiment model directory (a few KB) with the layout of the real one.

Meant for tests of code that loads and runs model directories. Deterministic: every weight is
set by hand, so two builds are byte-identical (with the same onnx and tokenizers versions).

* tokenizer.json: WordLevel, vocabulary of VOCAB (52 tokens: [PAD] [UNK] [CLS] [SEP] + words),
  BERT normalizer (lowercase) and pre-tokenizer, "[CLS] text [SEP]", padding to the longest,
  truncation at 128.
* model.onnx: same inputs and output as the real model (input_ids, attention_mask,
  token_type_ids int64 [batch, sequence] -> probabilities float32 [batch, 3], [NEG, NEU, POS]).
  Graph: token embedding (3 dims: positive, negative, other word) + token-type embedding (zeros),
  attention-masked mean pool, MatMul + Add, Softmax. Special tokens embed to zero.
  Examples: "I love this" -> POS, "I hate this" -> NEG, "the phone is on the table" -> NEU.
* config.json: id2label {0: NEG, 1: NEU, 2: POS}, label2id, onnx_inputs, onnx_output.
* manifest.json: SHA-256 of each file.

With ``--int8`` the graph goes through ``tweetflow_model.quantize`` (int8 embedding rows,
int8 head with per-row activation scales), like the real model's encoder.

    python -m tweetflow_model.tiny [--out tests/fixtures/tiny-model]
    python -m tweetflow_model.tiny --int8 [--out tests/fixtures/tiny-model-int8]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import LABELS, MAX_LENGTH
from .common import REPO_ROOT, configure_tokenizer, write_json, write_manifest

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
POSITIVE = ["good", "great", "love", "happy", "awesome", "best", "nice", "fun", "thanks", "amazing", "like", "cool"]
NEGATIVE = ["bad", "hate", "sad", "awful", "worst", "terrible", "sick", "tired", "miss", "sucks", "angry", "boring"]
OTHER = ["i", "you", "it", "this", "that", "the", "a", "is", "am", "my", "today", "work", "day",
         "movie", "phone", "on", "table", "and", "to", "not", "so", "!", ".", "?"]
VOCAB = SPECIAL + POSITIVE + NEGATIVE + OTHER
# Head: logits NEG = 6 * neg share, NEU = 0.5 * other share, POS = 6 * pos share.
HEAD_W = np.array([[0.0, 0.0, 6.0],   # positive dimension
                   [6.0, 0.0, 0.0],   # negative dimension
                   [0.0, 0.5, 0.0]],  # other-word dimension
                  np.float32)
HEAD_B = np.zeros(3, np.float32)
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "tiny-model"
DEFAULT_OUT_INT8 = REPO_ROOT / "tests" / "fixtures" / "tiny-model-int8"


def build_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", VOCAB.index("[CLS]")), ("[SEP]", VOCAB.index("[SEP]"))])
    tok.add_special_tokens(SPECIAL)
    return configure_tokenizer(tok)


def embedding_table() -> np.ndarray:
    table = np.zeros((len(VOCAB), 3), np.float32)
    for i, t in enumerate(VOCAB):
        if t in POSITIVE:
            table[i, 0] = 1
        elif t in NEGATIVE:
            table[i, 1] = 1
        elif t in OTHER or t == "[UNK]":
            table[i, 2] = 1
    return table


def build_model() -> onnx.ModelProto:
    c = lambda name, a: numpy_helper.from_array(np.asarray(a), name)  # noqa: E731
    n = helper.make_node
    nodes = [
        n("Gather", ["embedding", "input_ids"], ["tok"], name="token_embedding"),
        n("Gather", ["type_embedding", "token_type_ids"], ["typ"], name="type_embedding"),
        n("Add", ["tok", "typ"], ["emb"]),
        n("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        n("Unsqueeze", ["mask", "axis_last"], ["mask3"]),
        n("Mul", ["emb", "mask3"], ["masked"]),
        n("ReduceSum", ["masked", "axis_1"], ["summed"], keepdims=0),
        n("ReduceSum", ["mask3", "axis_1"], ["count0"], keepdims=0),
        n("Max", ["count0", "count_eps"], ["count"]),
        n("Div", ["summed", "count"], ["pooled"]),
        n("MatMul", ["pooled", "head.weight"], ["head_matmul"]),
        n("Add", ["head_matmul", "head.bias"], ["logits"]),
        n("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    inits = [c("embedding", embedding_table()), c("type_embedding", np.zeros((2, 3), np.float32)),
             c("axis_last", np.array([-1], np.int64)), c("axis_1", np.array([1], np.int64)),
             c("count_eps", np.array(1e-9, np.float32)), c("head.weight", HEAD_W), c("head.bias", HEAD_B)]
    ints = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])  # noqa: E731
    graph = helper.make_graph(nodes, "tiny-sentiment",
                              [ints("input_ids"), ints("attention_mask"), ints("token_type_ids")],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="tweetflow_model.tiny")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build(out: Path, int8: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    model = build_model()
    if int8:
        from .quantize import quantize_model

        model, _ = quantize_model(model)
    (out / "model.onnx").write_bytes(model.SerializeToString())
    build_tokenizer().save(str(out / "tokenizer.json"), pretty=True)
    write_json(out / "config.json", {
        "model_type": "tweetflow-tiny",
        "architectures": ["TinyMeanPoolClassifier"],
        "vocab_size": len(VOCAB), "hidden_size": 3,
        "id2label": {str(i): l for i, l in enumerate(LABELS)},
        "label2id": {l: i for i, l in enumerate(LABELS)},
        "onnx_inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "onnx_output": "probabilities",
        "pooling": "mean", "normalize_embeddings": False, "max_length": MAX_LENGTH,
        **({"quantization": "int8: weights per column, activations per row"} if int8 else {}),
    })
    write_manifest(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--int8", action="store_true", help="quantize the graph like the real encoder")
    a = ap.parse_args(argv)
    a.out = a.out or (DEFAULT_OUT_INT8 if a.int8 else DEFAULT_OUT)
    build(a.out, int8=a.int8)
    size = sum(p.stat().st_size for p in a.out.iterdir())
    print(f"tiny: wrote {a.out} ({size} bytes)")


if __name__ == "__main__":
    main()
