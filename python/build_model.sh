#!/usr/bin/env bash
# Builds the tweet-sentiment model offline: export -> quantize -> embed -> train -> assemble -> evaluate.
# The head is fitted on datasets/sentiment140/train.csv.gz, tuned on validation.csv.gz and
# evaluated on test.csv.gz (see python/tweetflow_model/split.py).
#
#   python/build_model.sh [OUT_DIR]     (default: data/model/tweet-sentiment)
#
# OUT_DIR receives the model directory (model.onnx, tokenizer.json, config.json, manifest.json);
# intermediate files and metrics go to OUT_DIR.work/. Idempotent: a step is skipped when its
# outputs exist and the SHA-256 of its inputs (files and code) matches the stamp it left.
# Environment: PYTHON (default .venv/bin/python), TWEETFLOW_THREADS (onnxruntime threads, default 2;
# embedding runs that many one-thread sessions in as many processes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${PYTHON:-$root/.venv/bin/python}
out=${1:-data/model/tweet-sentiment}
work=$out.work
mkdir -p "$work"
export PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}"
pkg=python/tweetflow_model
data=datasets/sentiment140
minilm=$("$py" -c 'from tweetflow_model.common import minilm_dir; print(minilm_dir())')

# step NAME "INPUTS..." "OUTPUTS..." COMMAND...: runs COMMAND unless every output exists and
# the stamp work/NAME.stamp holds the hash of the inputs (file contents, in the order given).
step() {
  local name=$1 inputs=$2 outputs=$3; shift 3
  local stamp="$work/$name.stamp" want f ok=1
  want=$( (for f in $inputs; do sha256sum "$f"; done; echo "$*") | sha256sum | cut -d' ' -f1)
  for f in $outputs; do [ -e "$f" ] || ok=0; done
  if [ $ok = 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "build: $name up to date" >&2
    return
  fi
  rm -f "$stamp"
  echo "build: $name" >&2
  local t0=$SECONDS
  "$@"
  echo "$want" > "$stamp"
  echo "build: $name done in $((SECONDS - t0)) s" >&2
}

t_start=$SECONDS
step export "$minilm/model.safetensors $minilm/config.json $pkg/export.py $pkg/bert.py" \
  "$work/encoder.onnx" \
  "$py" -m tweetflow_model.export --model-dir "$minilm" --out "$work/encoder.onnx"
step quantize "$work/encoder.onnx $pkg/quantize.py" "$work/encoder.int8.onnx" \
  "$py" -m tweetflow_model.quantize --in "$work/encoder.onnx" --out "$work/encoder.int8.onnx"
step tokenizer "$minilm/tokenizer.json $pkg/common.py" "$work/tokenizer.json" \
  "$py" -c "import sys; from tweetflow_model.common import load_tokenizer; load_tokenizer(sys.argv[1]).save(sys.argv[2])" \
  "$minilm/tokenizer.json" "$work/tokenizer.json"
for name in train validation; do
  csv=$data/$name.csv.gz
  step "embed-$name" "$work/encoder.int8.onnx $work/tokenizer.json $csv $pkg/embed.py $pkg/common.py" \
    "$work/$name.embeddings.npy $work/$name.labels.npy" \
    "$py" -m tweetflow_model.embed --model "$work/encoder.int8.onnx" --tokenizer "$work/tokenizer.json" \
      --csv "$csv" --out-dir "$work" --name "$name"
done
step train "$work/train.embeddings.npy $work/train.labels.npy $work/validation.embeddings.npy $work/validation.labels.npy $pkg/train.py $pkg/head.py" \
  "$work/head.json $work/train_metrics.json" \
  "$py" -m tweetflow_model.train --emb-dir "$work" --out-dir "$work"
step assemble "$work/encoder.int8.onnx $work/head.json $minilm/tokenizer.json $minilm/config.json $pkg/assemble.py $pkg/head.py $pkg/common.py" \
  "$out/model.onnx $out/tokenizer.json $out/config.json $out/manifest.json" \
  "$py" -m tweetflow_model.assemble --encoder "$work/encoder.int8.onnx" --head "$work/head.json" --out "$out"
step evaluate "$out/manifest.json $out/model.onnx $out/tokenizer.json $out/config.json $data/test.csv.gz $pkg/evaluate.py" \
  "$work/metrics.json" \
  "$py" -m tweetflow_model.evaluate --model-dir "$out" --out "$work/metrics.json"
echo "build: model directory $out ready ($((SECONDS - t_start)) s)" >&2
