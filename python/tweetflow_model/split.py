"""The fixed 90/10 split of the Sentiment140 training tweets into ``train`` and ``validation``.

Rule (one function, :func:`is_validation`): a tweet belongs to the validation part when the
SHA-256 of its id (the decimal digits of field 2, as ASCII), read as a big-endian integer from
its first 8 bytes, is divisible by 10. A tweet's part depends on its id alone, not on the other
rows or their order, so the split never changes when rows are added or reordered.

The two parts are checked in beside ``training.csv.gz`` as ``train.csv.gz`` (the model's
logistic-regression head is fitted on it) and ``validation.csv.gz`` (held out: it chooses the
head's settings and the neutral band). Each keeps the lines of ``training.csv`` byte for byte,
in the same order (by tweet id); together they are that file.

``unseen.csv.gz`` is ``validation.csv.gz`` followed by ``test.csv.gz``, the two gzip files joined
byte for byte (gzip readers read such a file as one stream): the tweets the model never trained
on, which the demo pipeline replays.

    python -m tweetflow_model.split            # writes the three files (gzip -9, no name or time)
    python -m tweetflow_model.split --check    # fails unless the checked-in files follow the rule
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
from pathlib import Path

from .common import TEST_CSV, TRAIN_CSV, TRAIN_PART_CSV, UNSEEN_CSV, VALIDATION_CSV


def is_validation(tweet_id: str) -> bool:
    """True when the tweet with this id is in the held-out validation part (about 10 %)."""
    digest = hashlib.sha256(tweet_id.strip().encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % 10 == 0


def tweet_id(line: bytes) -> str:
    """The id field (the second of six) of one CSV line of the training file."""
    row = next(csv.reader([line.decode("utf-8")]))
    if len(row) != 6:
        raise ValueError(f"expected 6 fields, got {len(row)}: {line[:80]!r}")
    return row[1]


def split_lines(raw: bytes) -> tuple[bytes, bytes]:
    """(train, validation) bytes of the uncompressed training CSV, each line kept as is.

    Lines are split at LF; the training file holds one tweet per line (no line breaks in texts).
    """
    if raw and not raw.endswith(b"\n"):
        raise ValueError("the training CSV must end with a line feed")
    train, validation = [], []
    for line in raw.splitlines(keepends=True):
        (validation if is_validation(tweet_id(line.rstrip(b"\n"))) else train).append(line)
    return b"".join(train), b"".join(validation)


def gzip_bytes(raw: bytes) -> bytes:
    """gzip level 9 without file name or time stamp (the same bytes on every machine)."""
    return gzip.compress(raw, compresslevel=9, mtime=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the existing files, write nothing")
    a = ap.parse_args(argv)
    train, validation = split_lines(gzip.decompress(TRAIN_CSV.read_bytes()))
    # unseen.csv.gz is the two gzip files joined, so its text is validation then test
    files = {TRAIN_PART_CSV: train, VALIDATION_CSV: validation,
             UNSEEN_CSV: validation + gzip.decompress(TEST_CSV.read_bytes())}
    for path, raw in files.items():
        rows = raw.count(b"\n")
        if a.check:
            if not path.is_file() or gzip.decompress(path.read_bytes()) != raw:
                raise SystemExit(f"{path} does not hold the {rows} rows the split rule gives")
            print(f"split: {path.name} ok ({rows} rows)")
            continue
        data = (VALIDATION_CSV.read_bytes() + TEST_CSV.read_bytes()) if path == UNSEEN_CSV else gzip_bytes(raw)
        path.write_bytes(data)
        print(f"split: {path.name} ({rows} rows, {len(data):,} bytes)")


if __name__ == "__main__":
    main()
