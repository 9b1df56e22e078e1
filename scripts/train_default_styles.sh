#!/usr/bin/env bash
# Train the zoo's default styles with the real VGG16 and ../shared/data/train, one after
# another, into runs/<id>/ (ignored by git). CPU settings by default; on a GPU pass e.g.
#   STEPS=4000 SIZE=256 ./scripts/train_default_styles.sh
# ONLY="great_wave the_scream" trains a subset; EXTRA="--width 16" adds options.
# Then bundle them: .venv/bin/python scripts/bundle_default_styles.py
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED:-../shared}"
STEPS="${STEPS:-600}"
SIZE="${SIZE:-192}"
STYLE_SIZE="${STYLE_SIZE:-320}"
BATCH="${BATCH:-4}"
PY="${PY:-.venv/bin/python}"
ONLY="${ONLY:-}"
EXTRA="${EXTRA:-}"

train() {  # id, file, title, painting, artist, year
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $1 "* ]]; then return; fi
  # shellcheck disable=SC2086  # EXTRA holds several options
  "$PY" -m train $EXTRA --style "$SHARED/data/styles/$2" --data "$SHARED/data/train" --out "runs/$1" \
    --vgg-weights "$SHARED/weights/vgg16_imagenet_features.safetensors" \
    --iterations "$STEPS" --image-size "$SIZE" --batch-size "$BATCH" --style-size "$STYLE_SIZE" \
    --checkpoint-every 100 --preview-every 100 --progress 0 \
    --style-id "$1" --title "$3" --painting "$4" --artist "$5" --year "$6" \
    --license "public domain" --dataset "BSDS500 (500 photos, ../shared/data/train)"
}

train starry_night starry_night.jpg "Starry Night" "The Starry Night" "Vincent van Gogh" 1889
train great_wave great_wave.jpg "The Great Wave" "The Great Wave off Kanagawa" "Katsushika Hokusai" 1831
train the_scream the_scream.jpg "The Scream" "The Scream" "Edvard Munch" 1893
train composition_vii composition_vii.jpg "Composition VII" "Composition VII" "Wassily Kandinsky" 1913
