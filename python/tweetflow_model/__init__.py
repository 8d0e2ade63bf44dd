"""tweetflow_model: builds the tweet-sentiment ONNX model offline (no PyTorch, no model hub).

Steps (each a module with a command line, ``python -m tweetflow_model.<step> --help``):
export -> quantize -> embed -> train -> assemble -> evaluate; ``tiny`` builds a small test model.
See ``python/README.md`` for the model directory contract.
"""

LABELS = ("NEG", "NEU", "POS")
"""Class order of the model output ``probabilities`` (index 0, 1, 2)."""

MAX_LENGTH = 128
"""Truncation length of the tokenizer (tokens, special tokens included)."""
