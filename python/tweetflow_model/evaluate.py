"""Evaluates an assembled model directory on the Sentiment140 test set.

* binary: the positive and negative rows (359), prediction = NEG or POS by the larger of the
  two probabilities (the band is ignored), accuracy and F1;
* 3-class: all rows (498), prediction = argmax over [NEG, NEU, POS] (the band applies),
  accuracy, macro F1, per-class F1, confusion matrix.

The model was fitted on the train part and its C and neutral band chosen on the validation part
of the training tweets (tweetflow_model.train); no row of this set was used, so these figures
are held-out estimates, NEU included.

    python -m tweetflow_model.evaluate --model-dir DIR [--csv test.csv.gz] --out metrics.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from .common import TEST_CSV, encode_batch, ort_session, read_tweets, verify_manifest, write_json
from .head import polarity_to_class


def predict(model_dir: Path, texts: list[str], batch_size: int = 16) -> np.ndarray:
    """Class probabilities [n, 3] from the model directory's model.onnx and tokenizer.json."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))  # as shipped: padding longest
    session = ort_session(model_dir / "model.onnx")
    out = session.get_outputs()[0].name
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    probs = np.zeros((len(texts), 3), np.float32)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        probs[idx] = session.run([out], encode_batch(tok, [texts[i] for i in idx]))[0]
    return probs


def evaluate(model_dir: Path, csv: Path) -> dict:
    problems = verify_manifest(model_dir)
    if problems:
        raise SystemExit(f"{model_dir}: manifest check failed: {problems}")
    cfg = json.loads((model_dir / "config.json").read_text())
    texts, pol = read_tweets(csv)
    y = polarity_to_class(pol)
    probs = predict(model_dir, texts)
    pn = y != 1
    y_bin = (y[pn] == 2).astype(int)
    pred_bin = (probs[pn, 2] > probs[pn, 0]).astype(int)
    pred3 = probs.argmax(1)
    labels = [cfg["id2label"][str(i)] for i in range(3)]
    return {
        "csv": str(csv), "neutral_band": cfg.get("neutral_band"),
        "binary": {"rows": int(pn.sum()), "accuracy": float(accuracy_score(y_bin, pred_bin)),
                   "f1_pos": float(f1_score(y_bin, pred_bin)),
                   "f1_macro": float(f1_score(y_bin, pred_bin, average="macro")),
                   "neu_predicted_on_pos_neg_rows": int((pred3[pn] == 1).sum())},
        "three_class": {"rows": int(len(y)), "accuracy": float(accuracy_score(y, pred3)),
                        "f1_macro": float(f1_score(y, pred3, average="macro")),
                        "f1_per_class": dict(zip(labels, map(float, f1_score(y, pred3, average=None, labels=[0, 1, 2])))),
                        "confusion_matrix": {"labels": labels, "rows_true_cols_pred":
                                             confusion_matrix(y, pred3, labels=[0, 1, 2]).tolist()}},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--csv", type=Path, default=TEST_CSV)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    m = evaluate(a.model_dir, a.csv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(a.out, m)
    b, t = m["binary"], m["three_class"]
    print(f"evaluate: pos/neg rows {b['rows']}: accuracy {b['accuracy']:.4f} F1 {b['f1_pos']:.4f}; "
          f"3-class {t['rows']}: accuracy {t['accuracy']:.4f} macro F1 {t['f1_macro']:.4f}")


if __name__ == "__main__":
    main()
