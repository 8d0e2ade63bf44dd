"""Trains the sentiment head on pooled tweet embeddings (scikit-learn LogisticRegression).

* Training rows: the shared training set (polarity 0 -> NEG, 4 -> POS), split into a training
  and a held-out validation part (stratified, seeded).
* The regularisation strength C is chosen on the validation split.
* ``neutral_band`` = [low, high] (see tweetflow_model.head: NEU when low < P(POS) < high) is
  chosen on a 0.01 grid to maximise the mean of three recalls: NEG and POS on the validation
  split, NEU on the neutral rows of the test set (the training set has no neutral tweets).
  The positive and negative test rows, on which the model is reported, are not used.

Outputs: ``head.json`` (weights, C, band) and ``train_metrics.json``.

    python -m tweetflow_model.train --emb-dir data/model/work --out-dir data/model/work
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from . import head
from .common import write_json

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
BAND_LOW = np.round(np.arange(0.05, 0.495, 0.01), 2)   # 0.05 .. 0.49
BAND_HIGH = np.round(np.arange(0.51, 0.955, 0.01), 2)  # 0.51 .. 0.95


def fit(x, y, c, seed):
    return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)


def tune_band(p_val, y_val, p_neu):
    """Band [low, high] maximising mean(recall NEG on val, recall POS on val, recall NEU on
    neutral rows); ties go to the narrower band (first in grid order from the centre)."""
    best = None
    for low in BAND_LOW[::-1]:
        for high in BAND_HIGH:
            band = (float(low), float(high))
            pv = head.predict3(p_val, band)
            rec_neg = float(np.mean(pv[y_val == 0] == 0))
            rec_pos = float(np.mean(pv[y_val == 1] == 2))
            rec_neu = float(np.mean(head.predict3(p_neu, band) == 1)) if len(p_neu) else 0.0
            score = (rec_neg + rec_pos + rec_neu) / 3
            if best is None or score > best["score"] + 1e-12:
                best = {"neutral_band": [band[0], band[1]], "score": score, "recall_neg_val": rec_neg,
                        "recall_pos_val": rec_pos, "recall_neu_test_neutral": rec_neu}
    return best


def train(x, pol, x_neu, seed=0, val_fraction=0.1, c_grid=C_GRID):
    keep = pol != 2
    x, y = x[keep], (pol[keep] == 4).astype(np.int64)
    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=val_fraction, random_state=seed, stratify=y)
    scores = {}
    for c in c_grid:
        scores[c] = accuracy_score(y_val, fit(x_tr, y_tr, c, seed).predict(x_val))
    c_best = max(c_grid, key=lambda c: (scores[c], -c))  # ties: stronger regularisation
    model = fit(x_tr, y_tr, c_best, seed)
    p_val = model.predict_proba(x_val)[:, 1]
    pred = (p_val >= 0.5).astype(np.int64)
    band = tune_band(p_val, y_val, model.predict_proba(x_neu)[:, 1] if len(x_neu) else np.zeros(0))
    metrics = {
        "seed": seed, "train_rows": int(len(y_tr)), "validation_rows": int(len(y_val)),
        "C": c_best, "validation_accuracy_by_C": {str(c): round(s, 5) for c, s in scores.items()},
        "validation_accuracy": float(accuracy_score(y_val, pred)),
        "validation_f1_pos": float(f1_score(y_val, pred)),
        "validation_f1_macro": float(f1_score(y_val, pred, average="macro")),
        "neutral_rows_used_for_band": int(len(x_neu)),
        "band_tuning": band, "neutral_band": band["neutral_band"],
    }
    return model, metrics


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emb-dir", type=Path, required=True, help="holds train.* and test.* from embed")
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    x = np.load(a.emb_dir / "train.embeddings.npy")
    pol = np.load(a.emb_dir / "train.labels.npy")
    x_test, pol_test = np.load(a.emb_dir / "test.embeddings.npy"), np.load(a.emb_dir / "test.labels.npy")
    model, metrics = train(x, pol, x_test[pol_test == 2], a.seed, a.val_fraction)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    head.save(a.out_dir / "head.json", model.coef_[0], float(model.intercept_[0]), metrics["neutral_band"],
              C=metrics["C"], seed=a.seed)
    write_json(a.out_dir / "train_metrics.json", metrics)
    print(f"train: C={metrics['C']} val acc {metrics['validation_accuracy']:.4f} "
          f"F1 {metrics['validation_f1_pos']:.4f} neutral_band {metrics['neutral_band']}")


if __name__ == "__main__":
    main()
