import json

import numpy as np
import pytest

from tweetflow_model import LABELS, common, head
from tweetflow_model.assemble import assemble
from tweetflow_model.embed import embed_texts


def test_head_argmax_implements_neutral_band():
    rng = np.random.default_rng(1)
    coef, intercept = rng.normal(size=16), 0.3
    x = rng.normal(size=(2000, 16)) * 0.5
    d = x @ coef + intercept
    p_pos = 1 / (1 + np.exp(-d))
    for band in ((0.49, 0.51), (0.4, 0.6), (0.25, 0.75), (0.45, 0.9), (0.1, 0.55)):
        w, b = head.head3(coef, intercept, band)
        probs = head.probabilities(x, w, b)
        assert np.array_equal(probs.argmax(1), head.predict3(p_pos, band))
        # NEG:POS odds are those of the binary model
        np.testing.assert_allclose(probs[:, 2] / probs[:, 0], np.exp(d), rtol=1e-4)
        neu = (p_pos > band[0]) & (p_pos < band[1])
        assert np.array_equal(probs.argmax(1) == 1, neu)
        assert np.array_equal(probs.argmax(1)[~neu] == 2, p_pos[~neu] >= 0.5)
    assert 0 < (head.predict3(p_pos, (0.25, 0.75)) == 1).mean() < 1
    with pytest.raises(ValueError):
        head.head3(coef, intercept, (0.5, 0.7))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, encoder_int8):
    rng = np.random.default_rng(7)
    d = tmp_path_factory.mktemp("model")
    head.save(d / "head.json", rng.normal(size=384) * 3, -0.2, (0.3, 0.8))
    assemble(encoder_int8, d / "head.json", d / "tweet-sentiment")
    return d


def test_assembled_model_equals_encoder_then_head(model_dir, encoder_int8, tokenizer, tweets):
    out = model_dir / "tweet-sentiment"
    session = common.ort_session(out / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    texts = tweets[:24]
    from tokenizers import Tokenizer

    batch = common.encode_batch(Tokenizer.from_file(str(out / "tokenizer.json")), texts)
    probs = session.run(None, batch)[0]
    assert probs.shape == (len(texts), 3)

    h = head.load(model_dir / "head.json")
    w, b = head.head3(h["coef"], h["intercept"], h["neutral_band"])
    emb = common.ort_session(encoder_int8).run(None, batch)[0]
    expected = head.probabilities(emb, w, b)
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert len(set(probs.argmax(1))) > 1, "a random head should not give one class for all tweets"


def test_config_and_manifest(model_dir):
    out = model_dir / "tweet-sentiment"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "manifest.json", "model.onnx", "tokenizer.json"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "NEG", "1": "NEU", "2": "POS"} and list(LABELS) == ["NEG", "NEU", "POS"]
    assert cfg["label2id"] == {"NEG": 0, "NEU": 1, "POS": 2}
    assert cfg["neutral_band"] == [0.3, 0.8] and cfg["onnx_output"] == "probabilities"
    assert json.loads((out / "tokenizer.json").read_text())["padding"]["strategy"] == "BatchLongest"

    assert common.verify_manifest(out) == []
    listed = {f["path"] for f in json.loads((out / "manifest.json").read_text())["files"]}
    assert listed == {"config.json", "model.onnx", "tokenizer.json"}


def test_manifest_detects_changes(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01")
    common.write_manifest(tmp_path)
    assert common.verify_manifest(tmp_path) == []
    (tmp_path / "a.txt").write_text("two")
    (tmp_path / "b.bin").unlink()
    assert common.verify_manifest(tmp_path) == ["hash mismatch: a.txt", "missing: b.bin"]


def test_evaluate_runs_on_a_model_directory(tmp_path):
    from tweetflow_model import tiny
    from tweetflow_model.evaluate import evaluate

    tiny.build(tmp_path / "tiny")
    m = evaluate(tmp_path / "tiny", common.TEST_CSV)
    assert m["binary"]["rows"] == 359 and m["three_class"]["rows"] == 498
    assert sum(map(sum, m["three_class"]["confusion_matrix"]["rows_true_cols_pred"])) == 498
