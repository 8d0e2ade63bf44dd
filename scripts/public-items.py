"""Counts a crate's public items, by kind, from rustdoc's list of everything it documents
(`target/doc/CRATE/all.html`, written by `cargo doc -p PACKAGE --no-deps`):

    cargo doc -p tweetflow-engine --no-deps && python3 scripts/public-items.py target/doc/tweetflow_engine

Every item a user of the crate can name is there once (re-exports under their public path),
and nothing private is."""

import collections
import re
import sys
from pathlib import Path

html = (Path(sys.argv[1]) / "all.html").read_text()
kinds = collections.Counter()
for section, body in re.findall(r'<h3 id="([a-z-]+)">.*?</h3><ul class="all-items">(.*?)</ul>', html, re.S):
    kinds[section] = len(re.findall(r"<li>", body))
print(f"{sum(kinds.values())} public items: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
