import json

import numpy as np
import pytest
import yaml

from tweetflow_model import common, head, train as train_mod
from tweetflow_model.embed import embed_texts
from tweetflow_model.train import train, tune_band


def sample(path, size, seed):
    texts, pol = common.read_tweets(path)
    idx = np.sort(np.random.default_rng(seed).choice(len(texts), size=size, replace=False))
    return [texts[i] for i in idx], pol[idx]


def test_training_on_a_small_subset_beats_chance(encoder_int8, tokenizer):
    session = common.ort_session(encoder_int8)
    tr_texts, pol_tr = sample(common.TRAIN_PART_CSV, 500, 0)
    val_texts, pol_val = sample(common.VALIDATION_CSV, 150, 1)
    x_tr, x_val = embed_texts(session, tokenizer, tr_texts), embed_texts(session, tokenizer, val_texts)

    model, m = train(x_tr, pol_tr, x_val, pol_val, seed=0, c_grid=(1.0,))
    print(f"subset validation accuracy {m['validation_accuracy']:.3f}, F1 {m['validation_f1_pos']:.3f}")
    assert m["train_rows"] == 500 and m["validation_rows"] == 150
    assert m["validation_accuracy"] > 0.6 and m["validation_f1_pos"] > 0.55
    low, high = m["neutral_band"]
    assert 0 < low < 0.5 < high < 1

    model2, m2 = train(x_tr, pol_tr, x_val, pol_val, seed=0, c_grid=(1.0,))
    np.testing.assert_array_equal(model.coef_, model2.coef_)  # seeded: reproducible
    assert m2 == m


def calibrated(n, seed):
    """P(POS) uniform on [0, 1] and labels drawn with that probability (a calibrated head)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return p, (rng.uniform(0, 1, n) < p).astype(np.int64)


def test_band_follows_the_neutral_cost_on_a_calibrated_head():
    p, y = calibrated(40_000, 0)
    # Chow's rule: NEU where max(p, 1 - p) < 1 - cost
    for cost, want in ((0.25, (0.25, 0.75)), (0.4, (0.4, 0.6))):
        band = tune_band(p, y, cost)
        assert np.allclose(band["neutral_band"], want, atol=0.03), (cost, band)
        share = float(np.mean((p > band["neutral_band"][0]) & (p < band["neutral_band"][1])))
        assert band["neutral_share_val"] == pytest.approx(share)
    # NEU costs as much as an error on average: no reason for a band, the narrowest one wins
    assert tune_band(p, y, 0.5)["neutral_band"] == pytest.approx([0.49, 0.51], abs=0.015)


def test_band_is_the_best_of_every_band_on_the_grid():
    p, y = calibrated(3_000, 3)
    truth = np.where(y == 1, 2, 0)
    best = None
    for low in train_mod.BAND_LOW[::-1]:
        for high in train_mod.BAND_HIGH:
            pred = head.predict3(p, (low, high))
            cost = (((pred != 1) & (pred != truth)).sum() + 0.3 * (pred == 1).sum()) / len(p)
            if best is None or cost < best[0] - 1e-12:
                best = (cost, [float(low), float(high)])
    band = tune_band(p, y, 0.3)
    assert band["neutral_band"] == best[1]
    assert band["cost"] == pytest.approx(best[0])


def test_band_leans_to_the_side_where_the_head_errs_more():
    p, y = calibrated(40_000, 1)
    # the head is overconfident about POS: tweets it scores 0.5..0.8 are positive only 40 % of the time
    shaky = (p > 0.5) & (p < 0.8)
    y[shaky] = (np.random.default_rng(2).uniform(0, 1, shaky.sum()) < 0.4).astype(np.int64)
    low, high = tune_band(p, y)["neutral_band"]
    assert high >= 0.78 and low <= 0.3


def write_embeddings(d, name, n, seed):
    rng = np.random.default_rng(seed)
    pol = np.where(rng.uniform(size=n) < 0.5, 0, 4)
    x = rng.normal(size=(n, 8)) + (pol[:, None] - 2) * 0.4
    np.save(d / f"{name}.embeddings.npy", x.astype(np.float32))
    np.save(d / f"{name}.labels.npy", pol.astype(np.int64))


def test_training_reads_train_and_validation_only(tmp_path, monkeypatch):
    write_embeddings(tmp_path, "train", 400, 0)
    write_embeddings(tmp_path, "validation", 200, 1)
    opened = []
    real_load = np.load
    monkeypatch.setattr(train_mod.np, "load", lambda path, *a, **k: opened.append(path.name) or real_load(path, *a, **k))
    train_mod.main(["--emb-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    assert sorted(opened) == sorted(f"{n}.{kind}.npy" for n in ("train", "validation") for kind in ("embeddings", "labels"))
    m = json.loads((tmp_path / "out" / "train_metrics.json").read_text())
    assert m["train_rows"] == 400 and m["validation_rows"] == 200
    assert json.loads((tmp_path / "out" / "head.json").read_text())["neutral_band"] == m["neutral_band"]


def task_closure(tasks, name):
    """The task and every task it depends on, transitively."""
    seen, todo = set(), [name]
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo.extend(tasks[t].get("depends_on", []))
    return seen


def test_the_training_pipeline_keeps_the_test_set_out_of_training():
    spec = yaml.safe_load((common.REPO_ROOT / "pipelines" / "train_sentiment_model.yaml").read_text())
    tasks = spec["tasks"]
    upstream = task_closure(tasks, "train")
    text = json.dumps([tasks[t] for t in sorted(upstream)])
    # training.csv.gz holds the validation rows too; test.* would be embeddings of the test set
    for banned in ("test.csv", "unseen.csv", "training.csv", "test.embeddings", "test.labels"):
        assert banned not in text, (banned, sorted(upstream))
    assert "datasets/sentiment140/train.csv.gz" in text and "datasets/sentiment140/validation.csv.gz" in text
    # the test set is read only after the model is assembled, to evaluate it
    readers = {t for t, spec in tasks.items() if "test.csv" in json.dumps(spec)}
    assert readers == {"evaluate"}
    assert "assemble" in task_closure(tasks, "evaluate")
