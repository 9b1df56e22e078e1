"""python -m train: the CLI end to end, data errors, exact resume, NaN stop, export round trip.

Small and fast: 32 px crops, a width-8 transformer and a random VGG cut 8x narrower.
The kill/resume, DDP and real-VGG tests live in test_train_faults.py / test_train_real.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from csvlog import read_csv
from PIL import Image
from safetensors.torch import load_file

from nst import precision
from nst.errors import NSTError
from nst.images import load_image, to_tensor
from nst.johnson import load_transformer
from nst.johnson.card import card_metadata_problems, model_card
from train import checkpoint as ckpt
from train import data
from train.__main__ import main
from train.config import TrainConfig

TINY = [
    "--iterations", "4", "--image-size", "32", "--batch-size", "2", "--style-size", "48",
    "--vgg-weights", "random", "--vgg-width-divisor", "8", "--width", "8",
    "--residual-blocks", "1", "--checkpoint-every", "2", "--preview-every", "2",
    "--val-count", "2", "--progress", "no",
]  # fmt: skip


def make_photos(folder: Path, count: int = 8, seed: int = 0) -> Path:
    """Smooth random colour fields with some edges: enough structure for the losses."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        base = rng.random((6, 7, 3)) * 255
        img = Image.fromarray(base.astype(np.uint8)).resize((56, 44), Image.Resampling.BICUBIC)
        img.save(folder / f"photo_{i:02d}.jpg", quality=95)
    return folder


def make_style(path: Path) -> Path:
    stripes = np.zeros((48, 48, 3), np.uint8)
    stripes[:, ::6] = (250, 200, 20)
    stripes[::5, :, 2] = 200
    Image.fromarray(stripes).save(path)
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: one thread beats two on a shared 2-core machine (no spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    return {
        "data": make_photos(tmp_path / "photos"),
        "style": make_style(tmp_path / "stripes.png"),
        "tmp": tmp_path,
    }


def run_args(setup: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["--style", str(setup["style"]), "--data", str(setup["data"]), "--out", str(out)] + [
        *TINY,
        *extra,
    ]


def test_trains_and_exports_a_model_the_transformer_loader_takes(setup):
    out = setup["tmp"] / "run"
    assert main(run_args(setup, out, "--title", "Stripes", "--artist", "Nobody")) == 0

    rows = read_csv(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r["total"]) and r["images_per_s"] > 0 for r in rows)
    val = read_csv(out / "val_metrics.csv")
    assert [int(r["step"]) for r in val] == [0, 2, 4]
    assert sorted(p.name for p in (out / "previews").iterdir()) == [
        "step_0000000.jpg",
        "step_0000002.jpg",
        "step_0000004.jpg",
    ]
    assert Image.open(out / "previews" / "step_0000004.jpg").size == (2 * 32, 2 * 32)

    export = out / "export"
    tensors = load_file(str(export / "model.safetensors"))
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    model = load_transformer(export)
    assert model.config.width == 8 and model.config.residual_blocks == 1
    assert model.config.style["id"] == "stripes" and model.config.style["artist"] == "Nobody"
    assert model.config.training["batch_size"] == 2
    assert (export / "style.jpg").is_file()
    assert len(list((export / "samples").glob("*.jpg"))) == 2
    # the export equals the last checkpoint, up to fp16 rounding
    last = load_transformer(ckpt.latest_checkpoint(out).path)
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(photo), last(photo), atol=2e-2)

    card = (export / "README.md").read_text()
    from huggingface_hub import ModelCard

    meta = ModelCard.load(export / "README.md").data.to_dict()
    assert meta["pipeline_tag"] == "image-to-image"
    assert "style-transfer" in meta["tags"] and meta["license"] == "mit"
    # a local folder is no Hub dataset id: named in the card's text, not in its metadata
    assert "datasets" not in meta and card_metadata_problems(meta) == []
    assert model.config.training["steps"] == model.config.training["total_steps"] == 4
    assert "![style](style.jpg)" in card and "samples/photo_00.jpg" in card
    assert "`style_weight`" in card and "Training time" in card and "CPU" in card


def test_checkpoints_are_complete_and_pruned(setup):
    out = setup["tmp"] / "run"
    main(run_args(setup, out, "--iterations", "8", "--keep-checkpoints", "2", "--export", "no"))
    found = ckpt.list_checkpoints(out)
    assert [c.step for c in found] == [6, 8]
    assert not list((out / "checkpoints").glob(".tmp-*"))
    for c in found:  # every checkpoint is itself a loadable model
        load_transformer(c.path)
    assert not (out / "export").exists()


def test_resume_continues_exactly_where_it_stopped(setup):
    """3 steps + resume to 6 == 6 steps in one go: same step, optimiser state, data order."""
    straight, split = setup["tmp"] / "straight", setup["tmp"] / "split"
    common = ("--checkpoint-every", "3", "--preview-every", "100", "--export", "no")
    assert main(run_args(setup, straight, "--iterations", "6", *common)) == 0
    assert main(run_args(setup, split, "--iterations", "3", *common)) == 0
    assert main(["--out", str(split), "--resume", "--iterations", "6"]) == 0

    a = load_file(str(ckpt.checkpoint_dir(straight, 6) / "model.safetensors"))
    b = load_file(str(ckpt.checkpoint_dir(split, 6) / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    oa = load_file(str(ckpt.checkpoint_dir(straight, 6) / "optimizer.safetensors"))
    ob = load_file(str(ckpt.checkpoint_dir(split, 6) / "optimizer.safetensors"))
    assert all(torch.equal(oa[k], ob[k]) for k in oa)
    steps = [int(r["step"]) for r in read_csv(split / "metrics.csv")]
    assert steps == [1, 2, 3, 4, 5, 6]
    # and it really trained: the weights moved from step 3
    c = load_file(str(ckpt.checkpoint_dir(split, 3) / "model.safetensors"))
    assert not all(torch.equal(b[k], c[k]) for k in b)


def test_refuses_to_overwrite_a_run_and_to_change_its_recipe_on_resume(setup, capsys):
    out = setup["tmp"] / "run"
    assert main(run_args(setup, out, "--iterations", "2", "--export", "no")) == 0
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert main(run_args(setup, out, "--iterations", "2")) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["--out", str(out), "--resume", "--style-weight", "5"]) == 2
    assert "style_weight" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
    assert main(["--out", str(setup["tmp"] / "nothing"), "--resume"]) == 2
    assert "Nothing to resume" in capsys.readouterr().err


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(setup, capsys):
    out = setup["tmp"] / "run"
    assert main(run_args(setup, out, "--iterations", "2", "--export", "no")) == 0
    good = load_file(str(ckpt.checkpoint_dir(out, 2) / "model.safetensors"))
    # A learning rate of 1e30 makes the weights, then the loss, overflow within a step or two.
    code = main(["--out", str(out), "--resume", "--iterations", "40", "--lr", "1e30"])
    err = capsys.readouterr().err
    assert code == 1
    assert "training stopped" in err and "last good checkpoint" in err
    latest = ckpt.latest_checkpoint(out)
    kept = load_file(str(latest.path / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in kept.values())
    if latest.step == 2:
        assert all(torch.equal(good[k], kept[k]) for k in good)
    assert not (out / "export").exists()


def test_data_folder_errors_are_clear(tmp_path):
    with pytest.raises(NSTError, match="does not exist"):
        data.list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(NSTError, match="holds no images"):
        data.list_images(tmp_path / "empty")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(NSTError, match="is a file"):
        data.list_images(tmp_path / "file.jpg")


def test_cli_reports_an_empty_data_folder(setup, capsys):
    empty = setup["tmp"] / "empty"
    empty.mkdir()
    args = run_args(setup, setup["tmp"] / "run")
    args[args.index("--data") + 1] = str(empty)
    assert main(args) == 1
    assert "holds no images" in capsys.readouterr().err


def test_bad_files_are_skipped_with_a_warning(tmp_path):
    folder = make_photos(tmp_path / "photos", count=3)
    (folder / "photo_01.jpg").write_bytes(b"not a jpeg at all")
    dataset = data.CropDataset(data.list_images(folder), 32, seed=0)
    with pytest.warns(UserWarning, match="photo_01.jpg"):
        crops = [dataset[p] for p in range(6)]
    assert all(c.shape == (3, 32, 32) for c in crops)
    # the next file in name order stands in, with the crop the bad one would have had
    position = next(p for p in range(6) if dataset.file_index(p) == 1)
    rng = np.random.default_rng([0, 1, position])
    expected = to_tensor(data.crop(load_image(folder / "photo_02.jpg"), 32, rng))[0]
    assert torch.equal(crops[position], expected)


def test_data_order_is_a_function_of_seed_and_position(tmp_path):
    files = data.list_images(make_photos(tmp_path / "photos", count=5))
    a, b = data.CropDataset(files, 32, seed=3), data.CropDataset(files, 32, seed=3)
    order = [a.file_index(p) for p in range(10)]
    assert sorted(order[:5]) == sorted(order[5:]) == [0, 1, 2, 3, 4]  # each epoch: every file
    assert torch.equal(a[7], b[7])
    assert [data.CropDataset(files, 32, seed=4).file_index(p) for p in range(10)] != order
    batches = list(data.StepBatches(2, 4, batch_size=3, rank=1, world=2))
    assert batches == [[15, 16, 17], [21, 22, 23]]  # (step * world + rank) * batch


def test_photo_size_crops_photos_at_that_scale_instead_of_squashing_them(tmp_path):
    photo = load_image(make_photos(tmp_path / "photos", count=1) / "photo_00.jpg")  # 56 x 44
    squashed = data.crop(photo, 32, None)  # the whole photo's height in the crop
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    scaled = data.crop(photo, 32, rng_a, photo_size=44)  # the photo at its own size
    assert squashed.size == scaled.size == (32, 32)
    # the crop is a window of the unscaled photo, at the position the rng picks
    left, top = int(rng_b.integers(0, 56 - 32 + 1)), int(rng_b.integers(0, 44 - 32 + 1))
    assert np.array_equal(
        np.asarray(scaled), np.asarray(photo.crop((left, top, left + 32, top + 32)))
    )
    assert not np.array_equal(np.asarray(squashed), np.asarray(scaled))
    dataset = data.CropDataset([tmp_path / "photos" / "photo_00.jpg"], 32, seed=0, photo_size=44)
    assert dataset[0].shape == (3, 32, 32)
    centre = data.load_validation([tmp_path / "photos" / "photo_00.jpg"], 32, photo_size=44)
    assert torch.equal(centre[0], to_tensor(photo.crop((12, 6, 44, 38)))[0])


def test_photo_size_is_recorded_and_must_hold_a_crop(setup, capsys):
    out = setup["tmp"] / "run"
    assert main(run_args(setup, out, "--photo-size", "40", "--export", "yes")) == 0
    assert load_transformer(out / "export").config.training["photo_size"] == 40
    assert main(run_args(setup, setup["tmp"] / "run2", "--photo-size", "16")) == 2
    assert "--photo-size 16 must be at least the crop size" in capsys.readouterr().err


def test_epochs_set_the_number_of_steps(setup):
    out = setup["tmp"] / "run"
    # 8 photos, 2 held out for validation: 1 epoch of 6 photos at batch 2 = 3 steps
    assert main(run_args(setup, out, "--epochs", "1", "--export", "no")) == 0
    assert ckpt.latest_checkpoint(out).step == 3
    assert json.loads((out / "run.json").read_text())["epochs"] == 1


def test_init_from_starts_at_the_given_network_and_refuses_another_shape(setup, capsys):
    first = setup["tmp"] / "first"
    assert main(run_args(setup, first, "--export", "no")) == 0
    source = ckpt.latest_checkpoint(first).path

    def net_after(name: str, *extra: str) -> torch.nn.Module:
        # lr 1e-12: the steps change nothing, so the final net is the starting net
        out = setup["tmp"] / name
        assert main(run_args(setup, out, "--lr", "1e-12", "--export", "no", *extra)) == 0
        return load_transformer(ckpt.latest_checkpoint(out).path)

    warm, cold = net_after("warm", "--init-from", str(source)), net_after("cold")
    given = load_transformer(source)
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(warm(photo), given(photo), atol=1e-5)
        assert (cold(photo) - given(photo)).abs().max() > 1e-2  # a cold start is another net
    assert json.loads((setup["tmp"] / "warm" / "run.json").read_text())["init_from"] == str(source)
    assert warm.config.training["init_from"] == str(source)
    assert warm.config.training["warm_start"]["steps"] == 4  # the start's own training
    card = str(model_card({"training": warm.config.training}))
    # named, but an absolute path stays off the card
    assert f"Warm start: from the weights of `{source.name}`" in card and str(source) not in card

    odd = setup["tmp"] / "odd"
    assert main(run_args(setup, odd, "--init-from", str(source), "--width", "12")) == 1
    err = capsys.readouterr().err
    assert "--init-from" in err and "width 8" in err and "width 12" in err and "multiple" in err
    assert not (odd / "checkpoints").exists()


def test_photo_skip_starts_from_the_photo_and_a_skip_net_continues_only_as_one(setup, capsys):
    first = setup["tmp"] / "first"
    assert main(run_args(setup, first, "--export", "no")) == 0
    source = ckpt.latest_checkpoint(first).path
    out = setup["tmp"] / "skip"
    extra = ("--lr", "1e-12", "--export", "no", "--init-from", str(source), "--photo-skip", "yes")
    assert main(run_args(setup, out, *extra)) == 0
    skip, given = load_transformer(ckpt.latest_checkpoint(out).path), load_transformer(source)
    assert skip.config.photo_skip and not given.config.photo_skip
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        # The plain net's last conv would paint over the photo: it starts at zero instead,
        # so the warm-started net returns the photo, with every other weight copied.
        assert (skip(photo) - photo).abs().max() < 1e-5
        assert (given(photo) - photo).abs().mean() > 0.1
    heads = ("decoder.2.1.weight", "decoder.2.1.bias")
    theirs = given.state_dict()
    for key, value in skip.state_dict().items():
        if key not in heads:
            torch.testing.assert_close(value, theirs[key], atol=1e-9, rtol=1e-6)

    plain = setup["tmp"] / "plain"
    skip_net = ckpt.latest_checkpoint(out).path
    assert main(run_args(setup, plain, "--init-from", str(skip_net))) == 1
    assert "--photo-skip yes" in capsys.readouterr().err
    assert not (plain / "checkpoints").exists()


def test_init_from_a_narrower_net_widens_it_into_the_same_function(setup):
    first = setup["tmp"] / "first"
    assert main(run_args(setup, first, "--export", "no")) == 0
    source = ckpt.latest_checkpoint(first).path
    out = setup["tmp"] / "wider"
    extra = ("--lr", "1e-12", "--export", "no", "--init-from", str(source), "--width", "16")
    assert main(run_args(setup, out, *extra)) == 0
    wider, given = load_transformer(ckpt.latest_checkpoint(out).path), load_transformer(source)
    assert (wider.config.width, given.config.width) == (16, 8)
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        difference = (wider(photo) - given(photo)).abs()
    # The same function but for the symmetry-breaking noise (train.widen.SYMMETRY_NOISE:
    # 53 dB from the source on a zoo net; a tiny random net averages fewer copies).
    assert difference.mean() < 0.02
    with torch.no_grad():
        assert (given(photo) - photo).abs().mean() > 0.1  # while the net itself does a lot
    assert wider.config.training["warm_start"]["widened_from"] == 8
    # The copies of a channel are not identical (else they would train identically).
    first_conv = wider.encoder[0][0][1].weight
    assert not torch.equal(first_conv[:8], first_conv[8:])


def test_widening_is_exact_without_noise() -> None:
    from nets import small_transformer

    from nst.johnson import TransformerConfig, TransformerNet
    from train.widen import widen_into

    narrow = small_transformer(width=4)
    wide = TransformerNet(TransformerConfig(width=12, residual_blocks=2)).eval()
    widen_into(wide, narrow, noise=0.0)
    photo = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        assert (wide(photo) - narrow(photo)).abs().max() < 1e-5


def test_val_count_zero_trains_without_validation(setup):
    out = setup["tmp"] / "run"
    assert main(run_args(setup, out, "--val-count", "0")) == 0
    assert not list((out / "previews").glob("*.jpg"))
    assert read_csv(out / "val_metrics.csv") == []
    assert len(read_csv(out / "metrics.csv")) == 4
    assert load_transformer(out / "export").config.width == 8


def test_val_count_must_not_be_negative(setup, capsys):
    assert main(run_args(setup, setup["tmp"] / "run", "--val-count", "-1")) == 2
    assert "--val-count" in capsys.readouterr().err


def test_max_minutes_stops_with_a_checkpoint_and_export_and_counts_resumes(setup):
    out = setup["tmp"] / "run"
    # a budget smaller than one step: the run stops after its first step
    budget = ["--iterations", "1000", "--max-minutes", "1e-7"]
    assert main(run_args(setup, out, *budget)) == 0
    assert [c.step for c in ckpt.list_checkpoints(out)] == [1]
    assert (out / "export" / "model.safetensors").is_file()
    # the budget counts the time already spent: a resume with it takes one more step only
    assert main(run_args(setup, out, *budget, "--resume")) == 0
    assert ckpt.latest_checkpoint(out).step == 2
    assert len(read_csv(out / "metrics.csv")) == 2


def test_lr_warmup_ramps_the_rate_up_then_hands_over_to_the_decay() -> None:
    from train.config import TrainConfig, UsageError
    from train.loop import learning_rate

    ramp = TrainConfig(lr=1e-3, lr_final=1e-4, lr_warmup=10)
    assert learning_rate(ramp, 0, 0.0, 100) == pytest.approx(1e-4)  # a tenth of the way up
    assert learning_rate(ramp, 4, 0.0, 100) == pytest.approx(1e-3 * 0.5 - 9e-4 * 0.04 * 0.5)
    assert learning_rate(ramp, 9, 0.0, 100) == pytest.approx(1e-3 - 9e-4 * 0.09)
    assert learning_rate(ramp, 50, 0.0, 100) == pytest.approx(5.5e-4)  # the decay alone
    flat = TrainConfig(lr=2e-3, lr_warmup=4)
    assert [learning_rate(flat, s, 0.0, 100) for s in range(5)] == pytest.approx(
        [5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3]
    )
    with pytest.raises(UsageError, match="--lr-warmup"):
        TrainConfig(style="a.jpg", data="d", out="o", lr_warmup=-1).finish()


def test_lr_final_decays_linearly_over_steps_or_the_time_budget(setup):
    from train.config import TrainConfig
    from train.loop import learning_rate

    steps = TrainConfig(lr=1e-3, lr_final=1e-4)
    assert learning_rate(steps, 0, 0.0, 100) == pytest.approx(1e-3)
    assert learning_rate(steps, 50, 0.0, 100) == pytest.approx(5.5e-4)
    assert learning_rate(steps, 100, 0.0, 100) == pytest.approx(1e-4)
    timed = TrainConfig(lr=1e-3, lr_final=1e-4, max_minutes=10)
    assert learning_rate(timed, 1, 300.0, 10**6) == pytest.approx(5.5e-4)  # half the time
    assert learning_rate(TrainConfig(lr=2e-3), 70, 99.0, 100) == 2e-3  # no decay asked for
    out = setup["tmp"] / "run"
    assert main(run_args(setup, out, "--lr", "1e-3", "--lr-final", "1e-4", "--export", "no")) == 0
    state = ckpt.latest_checkpoint(out).state
    assert state["param_groups"][0]["lr"] == pytest.approx(1e-3 - 0.9e-3 * 3 / 4)  # last step


def test_lr_final_above_lr_is_refused(setup, capsys):
    assert main(run_args(setup, setup["tmp"] / "run", "--lr-final", "0.5")) == 2
    assert "--lr-final" in capsys.readouterr().err


@pytest.mark.parametrize(("amx", "bf16"), [(True, True), (True, False), (False, True)])
def test_channels_last_auto_is_on_for_bf16_training_on_amx_cpus(monkeypatch, amx, bf16) -> None:
    """On AMX, oneDNN's bf16 convs run much faster channels_last than NCHW
    (benchmarks/bench_train.py); without AMX, or in fp32, NCHW stays the default."""
    import train.loop as loop

    monkeypatch.setattr(loop, "amx_cpu", lambda: amx)
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: bf16)
    cpu = torch.device("cpu")
    assert loop.use_channels_last(TrainConfig(channels_last="auto"), cpu) is (amx and bf16)
    fp32 = TrainConfig(channels_last="auto", precision="fp32")
    assert loop.use_channels_last(fp32, cpu) is False
    assert loop.use_channels_last(TrainConfig(channels_last="off"), cpu) is False
    assert loop.use_channels_last(TrainConfig(channels_last="on"), cpu) is True
