"""BERT encoder weights (read with safetensors.numpy) and a numpy reference forward pass.

The reference is the specification the ONNX export is tested against: BERT (post-LayerNorm,
exact erf GELU) -> attention-masked mean pooling -> L2 normalisation, which is what
sentence-transformers' all-MiniLM-L6-v2 (Transformer, Pooling(mean), Normalize) computes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from math import erf, sqrt
from pathlib import Path

import numpy as np

MASK_VALUE = -10000.0
"""Added to attention scores of padding keys (as in the original BERT)."""
NORM_EPS = 1e-12
"""Lower bound of the L2 norm (as torch.nn.functional.normalize)."""
COUNT_EPS = 1e-9
"""Lower bound of the token count in mean pooling (as sentence-transformers)."""


@dataclass
class BertConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    layer_norm_eps: float

    @classmethod
    def load(cls, model_dir: Path) -> "BertConfig":
        c = json.loads((Path(model_dir) / "config.json").read_text())
        if c.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported hidden_act {c['hidden_act']!r}")
        return cls(c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                   c["intermediate_size"], c["layer_norm_eps"])


def load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """All tensors of model.safetensors as float32 numpy arrays, without a ``bert.`` prefix."""
    from safetensors.numpy import load_file

    w = load_file(str(Path(model_dir) / "model.safetensors"))
    return {k.removeprefix("bert."): v for k, v in w.items()}


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


_erf = np.vectorize(erf, otypes=[np.float64])


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / sqrt(2.0)))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def forward(w: dict[str, np.ndarray], cfg: BertConfig, input_ids, attention_mask,
            token_type_ids) -> np.ndarray:
    """Sentence embeddings [batch, hidden] (mean-pooled, L2-normalised), computed in float64."""
    w = {k: v.astype(np.float64) for k, v in w.items() if v.dtype.kind == "f"}
    seq = input_ids.shape[1]
    x = (w["embeddings.word_embeddings.weight"][input_ids]
         + w["embeddings.position_embeddings.weight"][:seq][None]
         + w["embeddings.token_type_embeddings.weight"][token_type_ids])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                   cfg.layer_norm_eps)
    mask = attention_mask.astype(np.float64)
    bias = (1.0 - mask)[:, None, None, :] * MASK_VALUE
    heads, dh = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    batch = x.shape[0]

    def lin(t, name):
        return t @ w[name + ".weight"].T + w[name + ".bias"]

    def split(t):  # [B,S,H] -> [B,heads,S,dh]
        return t.reshape(batch, seq, heads, dh).transpose(0, 2, 1, 3)

    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}."
        q = split(lin(x, p + "attention.self.query"))
        k = split(lin(x, p + "attention.self.key"))
        v = split(lin(x, p + "attention.self.value"))
        att = softmax(q @ k.transpose(0, 1, 3, 2) / sqrt(dh) + bias)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(batch, seq, cfg.hidden_size)
        x = layer_norm(lin(ctx, p + "attention.output.dense") + x,
                       w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"], cfg.layer_norm_eps)
        h = gelu(lin(x, p + "intermediate.dense"))
        x = layer_norm(lin(h, p + "output.dense") + x, w[p + "output.LayerNorm.weight"],
                       w[p + "output.LayerNorm.bias"], cfg.layer_norm_eps)

    m = mask[:, :, None]
    pooled = (x * m).sum(1) / np.maximum(m.sum(1), COUNT_EPS)
    norm = np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), NORM_EPS)
    return pooled / norm
