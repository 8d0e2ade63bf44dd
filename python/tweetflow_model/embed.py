"""Embeds Sentiment140 tweets with the ONNX encoder (onnxruntime).

Texts are tokenized once, sorted by token length (stable: ties keep file order) and run in
batches padded to the longest text of the batch; results are written back in file order. The
batches go to --workers processes with a one-thread session each (default TWEETFLOW_THREADS,
or 2), which on 2 cores is faster than one session of two threads; --threads N runs one
session of N threads instead.

Outputs in --out-dir: ``<name>.embeddings.npy`` (float32 [n, dim]), ``<name>.labels.npy``
(int64 polarity 0/2/4), ``<name>.embed.json`` (counts, timing).

    python -m tweetflow_model.embed --model encoder.int8.onnx --tokenizer tokenizer.json \
        --csv datasets/sentiment140/training.csv.gz --out-dir data/model/work --name train
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .common import load_tokenizer, ort_session, read_tweets, write_json


def batches(tok, texts: list[str], batch_size: int = 16):
    """Yields (row indices, model inputs) per batch: texts sorted by token length (stable), each
    batch padded to its longest text."""
    padding = tok.padding  # encode unpadded, pad per batch below; restore the caller's setting
    tok.no_padding()
    try:
        enc = tok.encode_batch(texts)
    finally:
        if padding:
            tok.enable_padding(**padding)
    order = sorted(range(len(texts)), key=lambda i: (len(enc[i].ids), i))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        longest = max(len(enc[i].ids) for i in idx)
        ids = np.zeros((len(idx), longest), np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for r, i in enumerate(idx):
            n = len(enc[i].ids)
            ids[r, :n], mask[r, :n], types[r, :n] = enc[i].ids, enc[i].attention_mask, enc[i].type_ids
        yield idx, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _collect(n: int, results) -> np.ndarray:
    """Rows of (row indices, embeddings) pairs put back in input order."""
    result = None
    for idx, emb in results:
        if result is None:
            result = np.zeros((n, emb.shape[1]), np.float32)
        result[idx] = emb
    return result if result is not None else np.zeros((0, 0), np.float32)


def embed_texts(session, tok, texts: list[str], batch_size: int = 16) -> np.ndarray:
    """Embeddings of texts in input order; batches sorted by token length."""
    out_name = session.get_outputs()[0].name
    return _collect(len(texts), ((idx, session.run([out_name], feed)[0])
                                 for idx, feed in batches(tok, texts, batch_size)))


_worker = None  # a worker process's (session, output name)


def _start_worker(model_path: str) -> None:
    global _worker
    session = ort_session(model_path, 1)
    _worker = (session, session.get_outputs()[0].name)


def _embed_batch(feed: dict) -> np.ndarray:
    session, out_name = _worker
    return session.run([out_name], feed)[0]


def embed_texts_parallel(model_path, tok, texts: list[str], batch_size: int = 16,
                         workers: int = 2) -> np.ndarray:
    """The embeddings of embed_texts, computed by `workers` processes with a one-thread session
    each, which take the length-sorted batches in turn. On a 2-core machine two one-thread
    sessions embed faster than one two-thread session (threads of one session wait for each
    other at every operator). With an int8 model a text's embedding depends on no other row,
    so the result is the same row for row."""
    work = list(batches(tok, texts, batch_size))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(str(model_path),))
    with pool:
        embs = pool.map(_embed_batch, (feed for _, feed in work), chunksize=4)
        return _collect(len(texts), ((idx, emb) for (idx, _), emb in zip(work, embs)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--csv", type=Path, required=True)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--name", required=True, help="output file prefix, e.g. train or test")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=0, help="embed only the first N rows (0 = all)")
    ap.add_argument("--threads", type=int, default=None,
                    help="one session with this many threads (default: --workers sessions of one thread)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("TWEETFLOW_THREADS", "2")),
                    help="processes with a one-thread session each (default: TWEETFLOW_THREADS, or 2)")
    a = ap.parse_args(argv)

    texts, pol = read_tweets(a.csv)
    if a.limit:
        texts, pol = texts[:a.limit], pol[:a.limit]
    tok = load_tokenizer(a.tokenizer)
    t0 = time.perf_counter()
    if a.threads or a.workers <= 1:
        session = ort_session(a.model, a.threads)
        workers, threads = 1, session.get_session_options().intra_op_num_threads
        emb = embed_texts(session, tok, texts, a.batch_size)
    else:
        workers, threads = a.workers, 1
        emb = embed_texts_parallel(a.model, tok, texts, a.batch_size, workers)
    secs = time.perf_counter() - t0
    a.out_dir.mkdir(parents=True, exist_ok=True)
    np.save(a.out_dir / f"{a.name}.embeddings.npy", emb)
    np.save(a.out_dir / f"{a.name}.labels.npy", pol)
    stats = {"csv": str(a.csv), "tweets": len(texts), "dim": int(emb.shape[1]),
             "batch_size": a.batch_size, "workers": workers, "threads": threads,
             "seconds": round(secs, 2), "tweets_per_second": round(len(texts) / secs, 1)}
    write_json(a.out_dir / f"{a.name}.embed.json", stats)
    print(f"embed: {len(texts)} tweets in {secs:.1f} s ({len(texts) / secs:.0f} tweets/s) -> {a.out_dir}/{a.name}.*")


if __name__ == "__main__":
    main()
