import numpy as np

from tweetflow_model import common
from tweetflow_model.embed import embed_texts
from tweetflow_model.train import train


def test_training_on_a_small_subset_beats_chance(encoder_int8, tokenizer):
    texts, pol = common.read_tweets(common.TRAIN_CSV)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(texts), size=500, replace=False))
    x = embed_texts(common.ort_session(encoder_int8), tokenizer, [texts[i] for i in idx])
    test_texts, test_pol = common.read_tweets(common.TEST_CSV)
    neutral = [t for t, p in zip(test_texts, test_pol) if p == 2][:40]
    x_neu = embed_texts(common.ort_session(encoder_int8), tokenizer, neutral)

    model, m = train(x, pol[idx], x_neu, seed=0, val_fraction=0.3, c_grid=(1.0,))
    print(f"subset validation accuracy {m['validation_accuracy']:.3f}, F1 {m['validation_f1_pos']:.3f}")
    assert m["validation_rows"] == 150
    assert m["validation_accuracy"] > 0.6 and m["validation_f1_pos"] > 0.55
    low, high = m["neutral_band"]
    assert 0 < low < 0.5 < high < 1

    model2, m2 = train(x, pol[idx], x_neu, seed=0, val_fraction=0.3, c_grid=(1.0,))
    np.testing.assert_array_equal(model.coef_, model2.coef_)  # seeded: reproducible
    assert m2 == m
