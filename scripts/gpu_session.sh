#!/usr/bin/env bash
# The multi-style net's training in one run on a GPU machine: every painting of the data
# folder in one conditional-instance-norm network (Dumoulin et al. 2017), Johnson et al.'s
# recipe (256 px crops, batch 4), warm-started from a bundled net, for MINUTES of training.
#
# Here, once:   bash scripts/gpu_session.sh --prepare
#   copies what the GPU machine needs from the data folder (SHARED) into gpu_carry/ (ignored
#   by git: the VGG16 weights, the training photos, the paintings, 4 held-out photos).
# Then, with the repository and gpu_carry/ on the GPU machine, within one 10-minute command:
#   OUT=/path/to/results bash scripts/gpu_session.sh
# and bring back $OUT: the export (fp16 model + config + card + samples), the metrics, the
# previews and the training throughput on the GPU. Bundle the export into zoo/models/ and
# score it with `python -m docs.multistyle.study score --model <export> --label gpu`.
#
# Settings (environment): MINUTES (training time, default 7), INIT (the net to start from,
# default zoo/models/the_scream), WIDTH (32), SIZE (256), BATCH (4), LR / LR_FINAL
# (1e-3 / 1e-4), SHIFT / NOISE (the stability terms' weights, default 0), EXTRA (more
# options for python -m train).
# Dry run on CPU (tiny): MINUTES=0.1 SIZE=64 STYLE_SIZE=64 BENCH=0 OUT=/tmp/gpu_out \
#   bash scripts/gpu_session.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  SRC="${SHARED:-../shared}"
  rm -rf gpu_carry && mkdir -p gpu_carry/weights gpu_carry/data/content
  cp "$SRC/weights/vgg16_imagenet_features.safetensors" gpu_carry/weights/
  cp -r "$SRC/data/train" gpu_carry/data/train
  mkdir -p gpu_carry/data/styles
  find "$SRC/data/styles" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) \
    -exec cp {} gpu_carry/data/styles/ \;
  for f in tubingen.jpg golden_gate.jpg dog.jpg kodim08_town_houses.png; do
    cp "$SRC/data/content/$f" gpu_carry/data/content/
  done
  grep -qx "/gpu_carry/" .git/info/exclude 2>/dev/null || echo "/gpu_carry/" >> .git/info/exclude
  du -sh gpu_carry
  exit 0
fi

OUT="${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PY:-python3}"
START=$(date +%s)
RUN="${RUN:-runs/gpu_multistyle}"
{
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
} | tee "$OUT/device.txt"

# 1. One run, every painting; resumed if its folder is there (MINUTES is its total budget).
args=(--out "$RUN" --max-minutes "${MINUTES:-7}" --progress no)
if [ ! -f "$RUN/run.json" ]; then
  args+=(--style gpu_carry/data/styles --data gpu_carry/data/train
    --vgg-weights gpu_carry/weights/vgg16_imagenet_features.safetensors
    --init-from "${INIT:-zoo/models/the_scream}" --width "${WIDTH:-32}"
    --image-size "${SIZE:-256}" --photo-size "${SIZE:-256}" --batch-size "${BATCH:-4}"
    --style-size "${STYLE_SIZE:-512}" --lr "${LR:-1e-3}" --lr-final "${LR_FINAL:-1e-4}"
    --shift-weight "${SHIFT:-0}" --noise-weight "${NOISE:-0}" --iterations 100000
    --checkpoint-every 1000 --preview-every 2000)
else
  args+=(--resume)
fi
# shellcheck disable=SC2086
"$PY" -m train "${args[@]}" ${EXTRA:-} 2>&1 | tail -n 5 | tee "$OUT/train.log"

# 2. Bring back the export and the metrics (not the checkpoints).
mkdir -p "$OUT/run"
cp -r "$RUN"/export "$RUN"/*.csv "$RUN"/run.json "$RUN"/previews "$OUT/run/" 2>/dev/null || true

# 3. Training throughput on the GPU against a plain fp32 loop.
if [ "${BENCH:-1}" = "1" ]; then
  "$PY" benchmarks/bench_train.py --device cuda --steps 20 --warmup 5 \
    --vgg-weights gpu_carry/weights/vgg16_imagenet_features.safetensors 2>&1 \
    | tee "$OUT/bench_train_gpu.txt" | tail -n 12
fi
echo "done in $(( $(date +%s) - START )) s"
