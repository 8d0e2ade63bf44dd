import json

from tokenizers import Tokenizer

from tweetflow_model import common


def test_saved_tokenizer_pads_to_longest(tmp_path, minilm, tweets):
    path = tmp_path / "tokenizer.json"
    common.load_tokenizer(minilm / "tokenizer.json").save(str(path))
    cfg = json.loads(path.read_text())
    assert cfg["padding"]["strategy"] == "BatchLongest"
    assert cfg["truncation"]["max_length"] == 128

    tok = Tokenizer.from_file(str(path))  # as a consumer loads it, no extra settings
    texts = ["hi", tweets[0], tweets[5]]
    single = [len(tok.encode(t).ids) for t in texts]
    batch = tok.encode_batch(texts)
    assert {len(e.ids) for e in batch} == {max(single)} and max(single) < 128
    assert sum(batch[0].attention_mask) == single[0]
    assert len(tok.encode("word " * 500).ids) == 128


def test_original_tokenizer_pads_to_128(minilm):
    # Guards the reason for the override above: the shipped tokenizer pads every text to 128.
    tok = Tokenizer.from_file(str(minilm / "tokenizer.json"))
    assert len(tok.encode("hi").ids) == 128
