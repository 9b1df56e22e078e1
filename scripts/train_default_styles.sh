#!/usr/bin/env bash
# Train the zoo's default styles with the real VGG16 and ../shared/data/train, one after
# another, into runs/<id>/ (ignored by git). CPU settings by default:
#   1. runs/reconstruction: 200 steps with style weight 0 (a net that redraws the photo);
#   2. each style warm-started from it: STEPS steps at SIZE px, style weight 3.
# Why: from random weights, and at style weight 10, a few hundred CPU steps give dark
# blobs (the relu4_3 style term is cheapest to lower by flattening the picture); the
# warm start at style weight 3 shows the painting's colours and strokes within ~60 steps.
# On a GPU pass e.g.  STEPS=4000 SIZE=256 STYLE_SIZE=512 ./scripts/train_default_styles.sh
# ONLY="great_wave the_scream" trains a subset; EXTRA="--lr 2e-3" adds options.
# Then bundle them: .venv/bin/python scripts/bundle_default_styles.py
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED:-../shared}"
STEPS="${STEPS:-500}"
SIZE="${SIZE:-128}"
STYLE_SIZE="${STYLE_SIZE:-256}"
BATCH="${BATCH:-4}"
WIDTH="${WIDTH:-16}"
STYLE_WEIGHT="${STYLE_WEIGHT:-3}"
PY="${PY:-.venv/bin/python}"
ONLY="${ONLY:-}"
EXTRA="${EXTRA:-}"
VGG="$SHARED/weights/vgg16_imagenet_features.safetensors"
INIT="${INIT:-runs/reconstruction/export}"

if [ ! -f "$INIT/model.safetensors" ]; then  # INIT is RUN_DIR/export of this run
  "$PY" -m train --style "$SHARED/data/styles/starry_night.jpg" --data "$SHARED/data/train" \
    --out "$(dirname "$INIT")" --vgg-weights "$VGG" --iterations "${RECON_STEPS:-200}" \
    --image-size "${RECON_SIZE:-160}" \
    --batch-size 4 --width "$WIDTH" --lr 2e-3 --style-weight 0 --tv-weight 0 \
    --content-layers relu1_2,relu2_2 --style-layers relu1_2 --progress 0 \
    --style-id reconstruction --title "Photo reconstruction"
fi

train() {  # id, file, title, painting, artist, year
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $1 "* ]]; then return; fi
  # shellcheck disable=SC2086  # EXTRA holds several options
  "$PY" -m train $EXTRA --style "$SHARED/data/styles/$2" --data "$SHARED/data/train" --out "runs/$1" \
    --vgg-weights "$VGG" --init-from "$INIT" --width "$WIDTH" --style-weight "$STYLE_WEIGHT" \
    --iterations "$STEPS" --image-size "$SIZE" --batch-size "$BATCH" --style-size "$STYLE_SIZE" \
    --checkpoint-every 100 --preview-every 100 --progress 0 \
    --style-id "$1" --title "$3" --painting "$4" --artist "$5" --year "$6" \
    --license "public domain" --dataset "BSDS500 (500 photos, ../shared/data/train)"
}

train starry_night starry_night.jpg "Starry Night" "The Starry Night" "Vincent van Gogh" 1889
train great_wave great_wave.jpg "The Great Wave" "The Great Wave off Kanagawa" "Katsushika Hokusai" 1831
train the_scream the_scream.jpg "The Scream" "The Scream" "Edvard Munch" 1893
train composition_vii composition_vii.jpg "Composition VII" "Composition VII" "Wassily Kandinsky" 1913
