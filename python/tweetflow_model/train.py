"""Trains the sentiment head on pooled tweet embeddings (scikit-learn LogisticRegression).

* Training rows: ``train`` (the 90 % part of the Sentiment140 training tweets, see
  tweetflow_model.split; polarity 0 -> NEG, 4 -> POS). The head is fitted on these rows only.
* Validation rows: ``validation`` (the held-out 10 % part). The regularisation strength C and
  the neutral band are chosen on them. The test set is not read here.
* ``neutral_band`` = [low, high] (see tweetflow_model.head: NEU when low < P(POS) < high). The
  training tweets have no neutral label, so the band cannot be fitted to neutral examples; it
  is a reject rule instead. On a 0.01 grid, the band minimises the mean cost over the validation
  tweets, where a wrong NEG/POS answer costs 1 and a NEU answer costs ``NEUTRAL_COST`` (0.25):
  a tweet is called NEG or POS only where the head's answers at that P(POS) are right about 3
  times in 4 or more (Chow's rule with a reject cost of 0.25, read from validation data instead
  of trusting the head's calibration). Ties go to the narrower band.

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

from . import head
from .common import write_json

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
BAND_LOW = np.round(np.arange(0.05, 0.495, 0.01), 2)   # 0.05 .. 0.49
BAND_HIGH = np.round(np.arange(0.51, 0.955, 0.01), 2)  # 0.51 .. 0.95
NEUTRAL_COST = 0.25  # cost of a NEU answer, relative to a wrong NEG/POS answer
EMBEDDING_SETS = ("train", "validation")  # the <name>.embeddings.npy / .labels.npy files read


def fit(x, y, c, seed):
    return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)


def tune_band(p_val, y_val, neutral_cost=NEUTRAL_COST):
    """Band [low, high] minimising the mean cost on the validation rows (y_val: 0 NEG, 1 POS):
    1 per wrong NEG/POS answer, ``neutral_cost`` per NEU answer; ties go to the narrower band.

    The cost splits into a NEG side (rows with p <= low: NEG answers, wrong when POS) and a POS
    side (p >= high), the rest being NEU, so each bound is chosen on its own side."""
    if len(y_val) == 0:
        raise ValueError("the neutral band needs validation rows")
    p_val, y_val = np.asarray(p_val), np.asarray(y_val)

    def best_bound(grid, answered, wrong_label):
        # per bound: wrong answers minus the NEU cost saved by answering; ties: the first bound
        costs = [float(((y_val == wrong_label) & answered(t)).sum() - neutral_cost * answered(t).sum())
                 for t in grid]
        return float(grid[int(np.argmin(np.round(costs, 9)))])

    low = best_bound(BAND_LOW[::-1], lambda t: p_val <= t, 1)  # from the centre down
    high = best_bound(BAND_HIGH, lambda t: p_val >= t, 0)  # from the centre up
    pred = head.predict3(p_val, (low, high))
    truth = np.where(y_val == 1, 2, 0)
    neutral = pred == 1
    polar = ~neutral
    wrong = int((polar & (pred != truth)).sum())
    return {"neutral_band": [low, high], "cost": float((wrong + neutral_cost * neutral.sum()) / len(truth)),
            "neutral_cost": neutral_cost, "neutral_share_val": float(neutral.mean()),
            "accuracy_outside_band_val": float((pred[polar] == truth[polar]).mean()) if polar.any() else 0.0}


def train(x_tr, pol_tr, x_val, pol_val, seed=0, c_grid=C_GRID, neutral_cost=NEUTRAL_COST):
    """Fits the head on (x_tr, pol_tr); chooses C and the neutral band on (x_val, pol_val).

    Polarities are Sentiment140's 0 (NEG) and 4 (POS); other rows are ignored."""
    keep_tr, keep_val = pol_tr != 2, pol_val != 2
    x_tr, y_tr = x_tr[keep_tr], (pol_tr[keep_tr] == 4).astype(np.int64)
    x_val, y_val = x_val[keep_val], (pol_val[keep_val] == 4).astype(np.int64)
    scores = {}
    for c in c_grid:
        scores[c] = accuracy_score(y_val, fit(x_tr, y_tr, c, seed).predict(x_val))
    c_best = max(c_grid, key=lambda c: (scores[c], -c))  # ties: stronger regularisation
    model = fit(x_tr, y_tr, c_best, seed)
    p_val = model.predict_proba(x_val)[:, 1]
    pred = (p_val >= 0.5).astype(np.int64)
    band = tune_band(p_val, y_val, neutral_cost)
    metrics = {
        "seed": seed, "train_rows": int(len(y_tr)), "validation_rows": int(len(y_val)),
        "C": c_best, "validation_accuracy_by_C": {str(c): round(s, 5) for c, s in scores.items()},
        "validation_accuracy": float(accuracy_score(y_val, pred)),
        "validation_f1_pos": float(f1_score(y_val, pred)),
        "validation_f1_macro": float(f1_score(y_val, pred, average="macro")),
        "band_tuning": band, "neutral_band": band["neutral_band"],
    }
    return model, metrics


def load_embeddings(emb_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, polarities) written by tweetflow_model.embed under the name ``name``."""
    return np.load(emb_dir / f"{name}.embeddings.npy"), np.load(emb_dir / f"{name}.labels.npy")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emb-dir", type=Path, required=True, help="holds train.* and validation.* from embed")
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--neutral-cost", type=float, default=NEUTRAL_COST)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    (x_tr, pol_tr), (x_val, pol_val) = (load_embeddings(a.emb_dir, n) for n in EMBEDDING_SETS)
    model, metrics = train(x_tr, pol_tr, x_val, pol_val, a.seed, neutral_cost=a.neutral_cost)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    head.save(a.out_dir / "head.json", model.coef_[0], float(model.intercept_[0]), metrics["neutral_band"],
              C=metrics["C"], seed=a.seed)
    write_json(a.out_dir / "train_metrics.json", metrics)
    print(f"train: C={metrics['C']} val acc {metrics['validation_accuracy']:.4f} "
          f"F1 {metrics['validation_f1_pos']:.4f} neutral_band {metrics['neutral_band']} "
          f"(NEU share on validation {metrics['band_tuning']['neutral_share_val']:.3f})")


if __name__ == "__main__":
    main()
