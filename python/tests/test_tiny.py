import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from tweetflow_model import common, tiny

FIXTURE = common.REPO_ROOT / "tests" / "fixtures" / "tiny-model"
FIXTURE_INT8 = common.REPO_ROOT / "tests" / "fixtures" / "tiny-model-int8"


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


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
def test_tiny_runs_in_onnxruntime(tmp_path, int8):
    tiny.build(tmp_path, int8=int8)
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
    for i, text in enumerate(texts):
        alone = session.run(["probabilities"], common.encode_batch(tok, [text]))[0]
        np.testing.assert_allclose(alone[0], probs[i], atol=1e-6)


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
def test_checked_in_fixture_is_what_the_command_builds(tmp_path, int8):
    tiny.build(tmp_path, int8=int8)
    fixture = FIXTURE_INT8 if int8 else FIXTURE
    flag = " --int8" if int8 else ""
    assert files(fixture) == files(tmp_path), f"regenerate with: python -m tweetflow_model.tiny{flag}"
    assert common.verify_manifest(fixture) == []


def test_int8_tiny_model_is_quantized_and_close_to_fp32(tmp_path):
    import onnx

    tiny.build(tmp_path / "fp32")
    tiny.build(tmp_path / "int8", int8=True)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node]
    assert "MatMulIntegerToFloat" in ops and "MatMul" not in ops
    tok = Tokenizer.from_file(str(tmp_path / "fp32" / "tokenizer.json"))
    batch = common.encode_batch(tok, ["I love this great movie", "so tired and sad today", "the table"])
    fp32 = common.ort_session(tmp_path / "fp32" / "model.onnx").run(None, batch)[0]
    int8 = common.ort_session(tmp_path / "int8" / "model.onnx").run(None, batch)[0]
    np.testing.assert_allclose(int8, fp32, atol=0.02)
