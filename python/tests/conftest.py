import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tweetflow_model import common  # noqa: E402


@pytest.fixture(scope="session")
def minilm():
    return common.minilm_dir()


@pytest.fixture(scope="session")
def tweets():
    """A fixed mix of real tweets: the first 16 test tweets and every 997th training tweet."""
    test_texts, _ = common.read_tweets(common.TEST_CSV)
    train_texts, _ = common.read_tweets(common.TRAIN_CSV)
    return test_texts[:16] + train_texts[::997][:48]


@pytest.fixture(scope="session")
def tokenizer(minilm):
    return common.load_tokenizer(minilm / "tokenizer.json")


@pytest.fixture(scope="session")
def encoder_fp32(tmp_path_factory, minilm):
    import onnx

    from tweetflow_model.export import build_encoder

    path = tmp_path_factory.mktemp("encoder") / "encoder.onnx"
    onnx.save(build_encoder(minilm), str(path))
    return path


@pytest.fixture(scope="session")
def encoder_int8(encoder_fp32):
    from tweetflow_model.quantize import quantize

    path = encoder_fp32.with_name("encoder.int8.onnx")
    quantize(encoder_fp32, path)
    return path


def cosine(a, b):
    import numpy as np

    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
