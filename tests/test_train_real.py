"""A short CPU training run with the real VGG16 really learns the style.

40 steps on ../shared/data/train (64 px crops, batch 2, a narrow transformer) must bring
the style loss of the fixed validation previews well down, and below the style loss of the
photos themselves: the outputs are closer to the painting's Gram matrices than the photos
are. Skipped with a reason when ../shared is absent.
"""

from __future__ import annotations

import torch
from csvlog import read_csv

from train import data
from train.__main__ import main
from train.config import TrainConfig
from train.loop import build_loss


def test_short_real_run_lowers_the_style_loss_of_the_previews(
    real_vgg16, train_dir, style_dir, content_dir, tmp_path
):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: one thread is faster on a busy 2-core box
    try:
        out = tmp_path / "run"
        args = [
            "--style", str(style_dir / "starry_night.jpg"), "--data", str(train_dir),
            "--val-dir", str(content_dir), "--val-count", "2", "--out", str(out),
            "--iterations", "40", "--image-size", "64", "--batch-size", "2",
            "--width", "8", "--residual-blocks", "2", "--style-size", "128",
            "--vgg-weights", str(real_vgg16), "--checkpoint-every", "40",
            "--preview-every", "20", "--progress", "no", "--export", "no",
        ]  # fmt: skip
        assert main(args) == 0
        val = {int(r["step"]): r for r in read_csv(out / "val_metrics.csv")}
        assert sorted(val) == [0, 20, 40]

        # The photos themselves, scored by the same loss: the bar a stylisation must pass.
        config = TrainConfig(
            style=str(style_dir / "starry_night.jpg"),
            data=str(train_dir),
            out=str(out),
            style_size=128,
            vgg_weights=str(real_vgg16),
        ).finish()
        loss_fn = build_loss(config, "cpu")
        photos = data.load_validation(data.list_images(content_dir)[:2], 64)
        _, parts = loss_fn(photos, loss_fn.content_targets(photos))
        photo_style = float(parts["style"])
    finally:
        torch.set_num_threads(threads)

    print({s: round(v["style"], 3) for s, v in val.items()}, "photos:", round(photo_style, 3))
    assert val[40]["style"] < 0.3 * val[0]["style"]
    assert val[40]["style"] < 0.6 * photo_style
    assert val[40]["content"] < val[0]["content"]  # the photo still shows through
