#!/usr/bin/env bash
# The default styles' GPU training in one run on a GPU machine (dry-run on CPU; never run
# on a GPU yet).
#
# Here, once:   bash scripts/gpu_session.sh --prepare
#   copies what the GPU machine needs from the data folder (SHARED) into gpu_carry/ (ignored
#   by git, ~52 MB: the VGG16 weights, the 500 training photos, 4 paintings, 4 test photos).
# Then copy the repository with gpu_carry/ to the GPU machine and run there, within 10 minutes:
#   OUT=/path/to/results bash scripts/gpu_session.sh
#   and bring back $OUT: the four exports (fp16 model + config + card + samples), metrics,
#   the Johnson-vs-Gatys table and the training throughput on the GPU.
# Recipe: the CPU one (scripts/train_default_styles.sh: 256 px crops of the photos at their
# own 256 px), each style continuing from its bundled net at its width (16 or 32: the shipped
# nets must stylise 1024 px in 2 s on a 2-core CPU), MINUTES of training each (2 min on a
# GPU is thousands of steps).
# Bundle them afterwards with scripts/bundle_default_styles.py --runs <fetched>/runs.
# Its runs go to runs/gpu_session/ (RUNS=...), never to the CPU runs in runs/<id>/, which a
# dry run here would otherwise resume and cut short.
# Dry run on CPU (tiny): MINUTES=0.05 SIZE=64 STYLE_SIZE=64 BENCH=0 OUT=/tmp/gpu_out bash scripts/gpu_session.sh
# (SIZE=32 diverges to NaN within 43 steps from the Starry Night net of 2026-12-03.)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  SRC="${SHARED:-../shared}"
  rm -rf gpu_carry && mkdir -p gpu_carry/weights gpu_carry/data/styles gpu_carry/data/content
  cp "$SRC/weights/vgg16_imagenet_features.safetensors" gpu_carry/weights/
  cp -r "$SRC/data/train" gpu_carry/data/train
  for f in starry_night.jpg great_wave.jpg the_scream.jpg composition_vii.jpg; do
    cp "$SRC/data/styles/$f" gpu_carry/data/styles/
  done
  for f in tubingen.jpg golden_gate.jpg dog.jpg kodim08_town_houses.png; do
    cp "$SRC/data/content/$f" gpu_carry/data/content/
  done
  grep -qx "/gpu_carry/" .git/info/exclude 2>/dev/null || echo "/gpu_carry/" >> .git/info/exclude
  du -sh gpu_carry
  exit 0
fi

OUT="${OUT:?set OUT to the folder the results go to}"
export PYTHONUNBUFFERED=1
PY="${PY:-python3}"
START=$(date +%s)
export RUNS="${RUNS:-runs/gpu_session}"
BUDGET="${BUDGET:-480}"  # seconds of training before the remaining styles are skipped
{
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
} | tee "$OUT/device.txt"

# 1. The default styles, one after another on the one GPU.
for id in starry_night great_wave the_scream composition_vii; do
  if [ $(( $(date +%s) - START )) -gt "$BUDGET" ]; then
    echo "time budget spent: $id and later styles skipped" | tee -a "$OUT/device.txt"
    break
  fi
  SHARED=gpu_carry PY="$PY" ONLY="$id" JOBS=1 THREADS=0 MINUTES="${MINUTES:-1.8}" COMPILE=no \
    SIZE="${SIZE:-256}" STYLE_SIZE="${STYLE_SIZE:-512}" \
    bash scripts/train_default_styles.sh 2>&1 | tail -n 3 | tee -a "$OUT/train.log"
done

# 2. Bring back the exports and metrics (not the checkpoints).
mkdir -p "$OUT/runs"
for run in "$RUNS"/*/; do
  name=$(basename "$run")
  mkdir -p "$OUT/runs/$name"
  cp -r "$run"/export "$run"/*.csv "$run"/run.json "$run"/previews "$OUT/runs/$name/" 2>/dev/null || true
done

# 3. Benchmarks on the GPU: Johnson vs Gatys, training throughput vs a plain fp32 loop.
if [ "${BENCH:-1}" = "1" ]; then
  "$PY" -m docs.johnson_vs_gatys.study --model "$RUNS"/starry_night/export \
    --photo gpu_carry/data/content/tubingen.jpg --style gpu_carry/data/styles/starry_night.jpg \
    --weights gpu_carry/weights/vgg16_imagenet_features.safetensors --gatys-cap 60 \
    --write "$OUT/johnson_vs_gatys_gpu.md" 2>&1 | tail -n 8
  "$PY" benchmarks/bench_train.py --device cuda --steps 20 --warmup 5 \
    --vgg-weights gpu_carry/weights/vgg16_imagenet_features.safetensors 2>&1 \
    | tee "$OUT/bench_train_gpu.txt" | tail -n 12
fi
echo "done in $(( $(date +%s) - START )) s"
