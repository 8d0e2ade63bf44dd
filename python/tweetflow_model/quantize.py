"""Dynamic int8 quantization of the encoder (onnxruntime.quantization, per-channel weights).

    python -m tweetflow_model.quantize --in encoder.onnx --out encoder.int8.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path


def quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="src", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    quantize(a.src, a.out)
    print(f"quantize: wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
