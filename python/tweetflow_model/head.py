"""The sentiment head: binary logistic regression on the sentence embedding plus a neutral band.

Rule: with p = P(POS) from the logistic regression and ``neutral_band`` = [low, high]
(low < 0.5 < high), predict NEU when low < p < high, else NEG when p < 0.5, else POS.
A symmetric band [1 - t, t] is the rule "NEU when max(p, 1 - p) < t"; the band is tuned
(tweetflow_model.train) and is asymmetric when neutral tweets lean to one side.

In the ONNX graph the rule is one MatMul + Add + Softmax with three columns [NEG, NEU, POS].
With d = w.x + b (the log-odds of POS), lo = logit(low), hi = logit(high):

    logits = [-d/2,  a*d + c,  d/2],   a = (hi + lo) / (2 (hi - lo)),   c = -hi*lo / (hi - lo)

NEU has the largest logit exactly when lo < d < hi, and NEG beats POS exactly when d < 0, so the
argmax of the 3-class output implements the rule; NEG and POS keep the odds p / (1 - p).
"""

from __future__ import annotations

import json
from math import log
from pathlib import Path

import numpy as np


def logit(t: float) -> float:
    return log(t / (1.0 - t))


def check_band(band) -> tuple[float, float]:
    low, high = (float(v) for v in band)
    if not 0.0 < low < 0.5 < high < 1.0:
        raise ValueError(f"neutral_band must satisfy 0 < low < 0.5 < high < 1, got {band}")
    return low, high


def head3(coef: np.ndarray, intercept: float, band) -> tuple[np.ndarray, np.ndarray]:
    """Weights [dim, 3] and bias [3] of the 3-class head (column order NEG, NEU, POS)."""
    lo, hi = (logit(v) for v in check_band(band))
    a, c = (hi + lo) / (2 * (hi - lo)), -hi * lo / (hi - lo)
    coef = np.asarray(coef, np.float64).reshape(-1)
    w = np.stack([-coef / 2, a * coef, coef / 2], axis=1)
    b = np.array([-intercept / 2, a * intercept + c, intercept / 2])
    return w.astype(np.float32), b.astype(np.float32)


def probabilities(emb: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    z = emb.astype(np.float64) @ w.astype(np.float64) + b.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict3(p_pos: np.ndarray, band) -> np.ndarray:
    """Class ids 0 NEG, 1 NEU, 2 POS from the binary P(POS) and the band rule."""
    low, high = check_band(band)
    pred = np.where(p_pos >= 0.5, 2, 0)
    return np.where((p_pos > low) & (p_pos < high), 1, pred)


def polarity_to_class(pol: np.ndarray) -> np.ndarray:
    """Sentiment140 polarity 0/2/4 -> class id 0 NEG / 1 NEU / 2 POS."""
    return (np.asarray(pol) // 2).astype(np.int64)


def save(path: Path, coef: np.ndarray, intercept: float, band, **extra) -> None:
    obj = {"classes": ["NEG", "POS"], "neutral_band": list(check_band(band)), "intercept": float(intercept),
           "coef": [float(c) for c in np.asarray(coef).reshape(-1)], **extra}
    Path(path).write_text(json.dumps(obj) + "\n")


def load(path: Path) -> dict:
    obj = json.loads(Path(path).read_text())
    obj["coef"] = np.asarray(obj["coef"], np.float64)
    return obj
