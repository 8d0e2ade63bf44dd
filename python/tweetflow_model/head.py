"""The sentiment head: binary logistic regression on the sentence embedding plus a neutral band.

Rule (``neutral_band`` = t, 0.5 <= t < 1): with p = P(POS) from the logistic regression, predict
NEU when max(p, 1 - p) < t, else NEG or POS by the larger probability.

In the ONNX graph the rule is one MatMul + Add + Softmax with three columns [NEG, NEU, POS]:
with d = w.x + b (the log-odds of POS), the logits are [-d/2, logit(t)/2, d/2]. NEU has the
largest logit exactly when |d| < logit(t), i.e. when max(p, 1 - p) < t, so the argmax of the
3-class output implements the rule; NEG and POS keep the ratio p / (1 - p) of the binary model.
"""

from __future__ import annotations

import json
from math import log
from pathlib import Path

import numpy as np


def logit(t: float) -> float:
    return log(t / (1.0 - t))


def head3(coef: np.ndarray, intercept: float, neutral_band: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights [dim, 3] and bias [3] of the 3-class head (column order NEG, NEU, POS)."""
    coef = np.asarray(coef, np.float64).reshape(-1)
    w = np.stack([-coef / 2, np.zeros_like(coef), coef / 2], axis=1)
    b = np.array([-intercept / 2, logit(neutral_band) / 2, intercept / 2])
    return w.astype(np.float32), b.astype(np.float32)


def probabilities(emb: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    z = emb.astype(np.float64) @ w.astype(np.float64) + b.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict3(p_pos: np.ndarray, neutral_band: float) -> np.ndarray:
    """Class ids 0 NEG, 1 NEU, 2 POS from the binary P(POS) and the band rule."""
    pred = np.where(p_pos >= 0.5, 2, 0)
    return np.where(np.maximum(p_pos, 1 - p_pos) < neutral_band, 1, pred)


def polarity_to_class(pol: np.ndarray) -> np.ndarray:
    """Sentiment140 polarity 0/2/4 -> class id 0 NEG / 1 NEU / 2 POS."""
    return (np.asarray(pol) // 2).astype(np.int64)


def save(path: Path, coef: np.ndarray, intercept: float, neutral_band: float, **extra) -> None:
    obj = {"classes": ["NEG", "POS"], "neutral_band": neutral_band, "intercept": float(intercept),
           "coef": [float(c) for c in np.asarray(coef).reshape(-1)], **extra}
    Path(path).write_text(json.dumps(obj) + "\n")


def load(path: Path) -> dict:
    obj = json.loads(Path(path).read_text())
    obj["coef"] = np.asarray(obj["coef"], np.float64)
    return obj
