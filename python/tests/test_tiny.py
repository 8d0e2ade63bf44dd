import json

import numpy as np
from tokenizers import Tokenizer

from tweetflow_model import common, tiny

FIXTURE = common.REPO_ROOT / "tests" / "fixtures" / "tiny-model"


def files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_tiny_builds_deterministically(tmp_path):
    tiny.build(tmp_path / "a")
    tiny.build(tmp_path / "b")
    a = files(tmp_path / "a")
    assert a == files(tmp_path / "b")
    assert sorted(a) == ["config.json", "manifest.json", "model.onnx", "tokenizer.json"]
    assert sum(map(len, a.values())) < 50_000
    assert common.verify_manifest(tmp_path / "a") == []
    vocab = json.loads(a["tokenizer.json"])["model"]["vocab"]
    assert 40 <= len(vocab) <= 60


def test_tiny_runs_in_onnxruntime(tmp_path):
    tiny.build(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    labels = [cfg["id2label"][str(i)] for i in range(3)]
    assert labels == ["NEG", "NEU", "POS"]
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    session = common.ort_session(tmp_path / "model.onnx")
    texts = ["I love this", "I HATE this!", "the phone is on the table", "qwerty"]
    batch = common.encode_batch(tok, texts)
    probs = session.run(["probabilities"], batch)[0]
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert [labels[i] for i in probs.argmax(1)] == ["POS", "NEG", "NEU", "NEU"]
    # padding does not change a text's probabilities
    alone = session.run(["probabilities"], common.encode_batch(tok, texts[:1]))[0]
    np.testing.assert_allclose(alone[0], probs[0], atol=1e-6)


def test_checked_in_fixture_is_what_the_command_builds(tmp_path):
    tiny.build(tmp_path)
    assert files(FIXTURE) == files(tmp_path), "regenerate with: python -m tweetflow_model.tiny"
    assert common.verify_manifest(FIXTURE) == []
