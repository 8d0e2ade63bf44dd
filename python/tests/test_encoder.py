import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from conftest import cosine
from tweetflow_model import bert, common
from tweetflow_model.embed import embed_texts, embed_texts_parallel


def test_onnx_matches_numpy_reference(encoder_fp32, minilm, tokenizer, tweets):
    batch = common.encode_batch(tokenizer, tweets[:12])
    assert (batch["attention_mask"] == 0).any(), "the batch should contain padding"
    onnx_emb = common.ort_session(encoder_fp32).run(None, batch)[0]
    ref = bert.forward(bert.load_weights(minilm), bert.BertConfig.load(minilm), **batch)
    cos = cosine(onnx_emb, ref)
    print(f"fp32 ONNX vs numpy reference: min cosine {cos.min():.8f}")
    assert cos.min() > 0.999
    np.testing.assert_allclose(np.linalg.norm(onnx_emb, axis=1), 1.0, atol=1e-5)  # L2-normalised


def test_encoder_io_contract(encoder_fp32):
    s = ort.InferenceSession(str(encoder_fp32), providers=["CPUExecutionProvider"])
    ins = {i.name: i for i in s.get_inputs()}
    assert list(ins) == ["input_ids", "attention_mask", "token_type_ids"]
    for i in ins.values():
        assert i.type == "tensor(int64)" and len(i.shape) == 2 and all(isinstance(d, str) for d in i.shape)
    (out,) = s.get_outputs()
    assert out.name == "sentence_embedding" and out.shape[1] == 384


def test_quantized_close_to_fp32(encoder_fp32, encoder_int8, tokenizer, tweets):
    fp32 = embed_texts(common.ort_session(encoder_fp32), tokenizer, tweets)
    int8 = embed_texts(common.ort_session(encoder_int8), tokenizer, tweets)
    cos = cosine(fp32, int8)
    print(f"int8 vs fp32 over {len(tweets)} tweets: mean cosine {cos.mean():.4f}, min {cos.min():.4f}")
    assert cos.mean() > 0.99 and cos.min() > 0.98
    assert encoder_int8.stat().st_size < encoder_fp32.stat().st_size / 3


def test_embed_sorted_batches_keep_order_and_are_deterministic(encoder_fp32, encoder_int8, tokenizer, tweets):
    texts = tweets[:20]
    padding = tokenizer.padding
    s = common.ort_session(encoder_fp32)
    batched = embed_texts(s, tokenizer, texts, batch_size=8)
    one_by_one = np.concatenate([embed_texts(s, tokenizer, [t]) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)  # order restored, padding is inert
    # int8: activations are quantized per token row, so a text's embedding does not depend on
    # its batch mates or their padding either.
    s8 = common.ort_session(encoder_int8)
    batched8 = embed_texts(s8, tokenizer, texts, batch_size=8)
    alone8 = np.concatenate([embed_texts(s8, tokenizer, [t]) for t in texts])
    np.testing.assert_allclose(batched8, alone8, atol=1e-5)
    unsorted8 = np.concatenate([embed_texts(s8, tokenizer, texts[i:i + 8][::-1])[::-1] for i in range(0, 20, 8)])
    np.testing.assert_allclose(unsorted8, alone8, atol=1e-5)
    assert tokenizer.padding == padding  # the caller's tokenizer settings are left as they were


def test_embed_in_worker_processes_gives_the_same_rows(encoder_int8, tokenizer, tweets):
    # Two processes with a one-thread session each take the batches in turn: every row comes
    # back in input order with the embedding one two-thread session gives it.
    texts = tweets[:40]
    one = embed_texts(common.ort_session(encoder_int8, 2), tokenizer, texts, batch_size=4)
    two = embed_texts_parallel(encoder_int8, tokenizer, texts, batch_size=4, workers=2)
    assert two.shape == one.shape == (40, 384)
    np.testing.assert_allclose(two, one, atol=1e-6)


def test_quantize_weight_is_symmetric_per_column_and_survives_zero_columns():
    from tweetflow_model.quantize import QMAX, quantize_weight

    w = np.array([[0.5, 0.0, -2.0], [-0.25, 0.0, 1.0], [0.125, 0.0, 0.01]], np.float32)
    wq, scale = quantize_weight(w)
    assert wq.dtype == np.int8 and scale.shape == (3,)
    assert np.abs(wq).max(axis=0).tolist() == [QMAX, 0, QMAX]  # each used column spans the range
    np.testing.assert_allclose(wq * scale, w, atol=scale.max() / 2 + 1e-9)
    assert np.isfinite(scale).all() and (wq[:, 1] == 0).all()


def test_quantized_matmul_rows_are_independent(tmp_path):
    """One row with huge values must not coarsen the other rows (per-tensor scales would)."""
    from onnx import TensorProto, helper, numpy_helper

    from tweetflow_model.quantize import quantize_model

    w = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    q, count = quantize_model(model)
    assert count == 1
    path = tmp_path / "mm.onnx"
    path.write_bytes(q.SerializeToString())
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(3, 16)).astype(np.float32)
    x[1] *= 1000.0
    x[2] = 0.0
    y = s.run(None, {"x": x})[0]
    alone = s.run(None, {"x": x[:1]})[0]
    np.testing.assert_array_equal(y[0], alone[0])
    np.testing.assert_allclose(y[0], x[0] @ w, rtol=0.05, atol=0.05)
    np.testing.assert_array_equal(y[2], 0.0)


def test_no_pytorch_needed():
    code = ("import sys; import tweetflow_model.export, tweetflow_model.quantize, tweetflow_model.embed, "
            "tweetflow_model.train, tweetflow_model.assemble, tweetflow_model.evaluate, tweetflow_model.tiny; "
            "from tweetflow_model.common import minilm_dir; minilm_dir(); "
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
