import gzip
import hashlib

from tweetflow_model import common


def test_dataset_copies_match_checksums():
    sums = dict(reversed(line.split()) for line in (common.DATASETS / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {"training.csv", "test.csv", "train.csv", "validation.csv", "unseen.csv"}
    for name, want in sums.items():
        raw = gzip.decompress((common.DATASETS / f"{name}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == want, name


def test_dataset_row_counts():
    texts, pol = common.read_tweets(common.TRAIN_CSV)
    assert len(texts) == 53_936 and sorted(set(pol.tolist())) == [0, 4]
    assert int((pol == 0).sum()) == 25_379
    texts, pol = common.read_tweets(common.TEST_CSV)
    assert len(texts) == 498 and [int((pol == p).sum()) for p in (0, 2, 4)] == [177, 139, 182]
    texts, pol = common.read_tweets(common.VALIDATION_CSV)
    assert len(texts) == 5_422 and [int((pol == p).sum()) for p in (0, 2, 4)] == [2_574, 0, 2_848]
    texts, pol = common.read_tweets(common.TRAIN_PART_CSV)
    assert len(texts) == 48_514 and [int((pol == p).sum()) for p in (0, 2, 4)] == [22_805, 0, 25_709]
