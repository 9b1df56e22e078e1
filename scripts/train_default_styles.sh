#!/usr/bin/env bash
# Train the zoo's default styles with the real VGG16 and ../shared/data/train into
# $RUNS/<id>/ (default runs/, ignored by git), then bundle each with
# python -m zoo add $RUNS/<id>/export --license "public domain".
#
# The CPU recipe (docs/zoo_training/README.md): each style continues from its bundled network
# in zoo/models/<id> at its width (the last export: training accumulates across runs) with
# the style image at 512 px and style weight 10 (the same objective as the Gatys reference),
# 256 px crops of the photos at 256 px (BSDS500's own size: nothing squashed or upscaled;
# far better per minute than 128 px crops of whole photos, the recipe before:
# docs/training_crops/README.md), Adam 5e-4 decaying to 5e-5, for MINUTES of training time,
# two single-threaded runs at a time (faster on 2 cores than one run with 2 threads). On CPUs
# with bf16 arithmetic (AVX-512 BF16, AMX) `python -m train` runs bf16 autocast by default,
# faster than fp32 (benchmarks/bench_train.py); PRECISION=fp32 turns it off. COMPILE=yes (the
# default) runs the transformer through torch.compile: a compile at the start of each run,
# then more images/s (bench_train.py's compile variant; docs/benchmarks.md); COMPILE=no for
# short runs.
#
#   MINUTES=35 ./scripts/train_default_styles.sh            # all four, two at a time
#   ONLY="great_wave the_scream" MINUTES=35 ./scripts/...  # a subset
#   INIT=none ...                                          # from random weights
# On a GPU (scripts/gpu_session.sh): JOBS=1 THREADS=0 SIZE=256 WIDTH=32 INIT=none MINUTES=...
# A run already in $RUNS/<id> is resumed (its own settings; MINUTES is its total budget).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED:-../shared}"
RUNS="${RUNS:-runs}"
MINUTES="${MINUTES:-35}"
SIZE="${SIZE:-256}"
PHOTO_SIZE="${PHOTO_SIZE-256}"  # --photo-size; PHOTO_SIZE= (empty): whole photos squashed to the crop size
STYLE_SIZE="${STYLE_SIZE:-512}"
BATCH="${BATCH:-4}"
WIDTH="${WIDTH:-zoo}"  # zoo = the bundled net's width (16 or 32)
# yes: the net adds its output to the photo (--photo-skip; from a plain net, its last conv
# starts at zero); zoo = as the bundled net
PHOTO_SKIP="${PHOTO_SKIP:-zoo}"
STYLE_WEIGHT="${STYLE_WEIGHT:-10}"
LR="${LR:-5e-4}"
LR_FINAL="${LR_FINAL:-5e-5}"  # linear decay over the time budget
JOBS="${JOBS:-2}"
THREADS="${THREADS:-1}"  # OMP threads per run; 0 = torch's default
PY="${PY:-.venv/bin/python}"
ONLY="${ONLY:-}"
EXTRA="${EXTRA:-}"
PRECISION="${PRECISION:-auto}"
COMPILE="${COMPILE:-yes}"
INIT="${INIT:-zoo}"  # zoo = the bundled network of the same style; none; or a folder
VGG="$SHARED/weights/vgg16_imagenet_features.safetensors"

train() {  # id, file, title, painting, artist, year
  local init=()
  if [ "$INIT" = zoo ]; then init=(--init-from "zoo/models/$1");
  elif [ "$INIT" != none ]; then init=(--init-from "$INIT"); fi
  local args=(--max-minutes "$MINUTES" --compile "$COMPILE")
  if [ -f "$RUNS/$1/run.json" ]; then
    args+=(--resume)
  else
    local width="$WIDTH" skip="$PHOTO_SKIP"  # a resumed run keeps its own
    if [ "$width" = zoo ]; then
      width=$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['width'])" \
        "zoo/models/$1/config.json")
    fi
    if [ "$skip" = zoo ]; then
      skip=$("$PY" -c "import json, sys; c = json.load(open(sys.argv[1])); \
print('yes' if c.get('photo_skip') else 'no')" "zoo/models/$1/config.json")
    fi
    args+=(--style "$SHARED/data/styles/$2" --data "$SHARED/data/train" --vgg-weights "$VGG"
      "${init[@]}" --width "$width" --photo-skip "$skip" --style-weight "$STYLE_WEIGHT" --lr "$LR" --lr-final "$LR_FINAL"
      --iterations 1000000 --image-size "$SIZE" --batch-size "$BATCH" --style-size "$STYLE_SIZE"
      ${PHOTO_SIZE:+--photo-size "$PHOTO_SIZE"}
      --precision "$PRECISION" --checkpoint-every 50 --keep-checkpoints 1000 --preview-every 200 --progress no
      --style-id "$1" --title "$3" --painting "$4" --artist "$5" --year "$6"
      --license "public domain" --dataset "BSDS500 (500 photos)")
  fi
  local threads=()
  if [ "$THREADS" != 0 ]; then threads=(env OMP_NUM_THREADS="$THREADS"); fi
  mkdir -p "$RUNS"
  # shellcheck disable=SC2086  # EXTRA holds several options
  "${threads[@]}" "$PY" -m train "${args[@]}" $EXTRA --out "$RUNS/$1" > "$RUNS/$1.log" 2>&1
  echo "$1: $(tail -n 1 "$RUNS/$1.log")"
}

STYLES=(
  "starry_night|starry_night.jpg|Starry Night|The Starry Night|Vincent van Gogh|1889"
  "great_wave|great_wave.jpg|The Great Wave|The Great Wave off Kanagawa|Katsushika Hokusai|1831"
  "the_scream|the_scream.jpg|The Scream|The Scream|Edvard Munch|1893"
  "composition_vii|composition_vii.jpg|Composition VII|Composition VII|Wassily Kandinsky|1913"
)
running=0
for entry in "${STYLES[@]}"; do
  IFS='|' read -r id file title painting artist year <<< "$entry"
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $id "* ]]; then continue; fi
  train "$id" "$file" "$title" "$painting" "$artist" "$year" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
