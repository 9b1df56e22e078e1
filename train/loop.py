"""The training loop of Johnson et al. 2016 on the project's losses and loss network.

One process trains on one device; under ``torchrun`` every process trains on its own
share of each step's data and DistributedDataParallel averages the gradients (NCCL on
GPUs, gloo on CPU), so all ranks hold the same weights after every step. Rank 0 alone
writes checkpoints, previews, metrics and the export.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from nst.errors import NSTError
from nst.files import atomic_path, atomic_write_text
from nst.hardware import describe
from nst.images import load_image, save_image, to_tensor
from nst.johnson import TransformerConfig, TransformerNet, load_transformer
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets
from nst.vgg import load_loss_network
from train import checkpoint as ckpt
from train import data
from train.config import TrainConfig

METRICS_NAME = "metrics.csv"
VAL_METRICS_NAME = "val_metrics.csv"
RUN_CONFIG_NAME = "run.json"
METRIC_FIELDS = ["step", "epoch", "total", "content", "style", "tv", "images_per_s", "seconds"]
VAL_FIELDS = ["step", "total", "content", "style", "tv"]


@dataclass
class Dist:
    """Where this process sits in a (possibly one-process) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Read torchrun's environment; join the process group when there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank, device)


def _all_true(flag: bool, env: Dist) -> bool:
    """True when ``flag`` holds on every rank (a NaN on one rank stops them all)."""
    if env.world == 1:
        return flag
    t = torch.tensor([0.0 if flag else 1.0], device=env.device)
    dist.all_reduce(t)
    return t.item() == 0.0


def _mean_over_ranks(values: torch.Tensor, env: Dist) -> torch.Tensor:
    if env.world > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= env.world
    return values


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: default on GPUs with bf16 units; on request elsewhere."""
    if config.precision == "bf16":
        return True
    if config.precision == "fp32":
        return False
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    if config.channels_last == "auto":
        return device.type == "cuda"
    return config.channels_last == "on"


def build_loss(config: TrainConfig, device: torch.device) -> PerceptualLoss:
    """VGG16 cut at the deepest layer asked for, and the style's Gram targets."""
    layers = list(dict.fromkeys(config.content_layers + config.style_layers))
    net = load_loss_network(
        layers,
        weights=config.vgg_weights,
        arch="vgg16",
        device=device,
        width_divisor=config.vgg_width_divisor,
    )
    style = to_tensor(load_image(config.style, long_side=config.style_size), device)
    grams = blended_gram_targets(net, [style], config.style_layers)
    weights = LossWeights(
        content=config.content_weight, style=config.style_weight, tv=config.tv_weight
    )
    return PerceptualLoss(net, config.content_layers, config.style_layers, grams, weights)


def style_metadata(config: TrainConfig) -> dict[str, str]:
    """The ``style`` block of config.json (also read by the model card and publish)."""
    return {
        "id": config.style_id,
        "title": config.title,
        "painting": config.painting,
        "artist": config.artist,
        "year": config.year,
        "image": "style.jpg",
    }


def training_metadata(config: TrainConfig) -> dict[str, object]:
    """The hyper-parameters that define the model (paths and run mechanics left out)."""
    keys = (
        "iterations",
        "image_size",
        "batch_size",
        "style_size",
        "lr",
        "content_weight",
        "style_weight",
        "tv_weight",
        "content_layers",
        "style_layers",
        "seed",
        "dataset",
    )
    meta: dict[str, object] = {k: getattr(config, k) for k in keys}
    meta["loss_network"] = "vgg16"
    if config.init_from:
        # As given: an export folder's own name is just "export", which says nothing.
        meta["init_from"] = str(config.init_from)
    meta["optimizer"] = "adam"
    return meta


def build_model(config: TrainConfig) -> TransformerNet:
    torch.manual_seed(config.seed)  # every rank starts from the same weights
    net_config = TransformerConfig(
        width=config.width,
        residual_blocks=config.residual_blocks,
        style=style_metadata(config),
        training=training_metadata(config),
    )
    model = TransformerNet(net_config)
    if config.init_from:
        _initialise_from(model, config.init_from)
    return model


def _initialise_from(model: TransformerNet, path: str) -> None:
    """Copy the weights of a trained network of the same shape (warm start)."""
    source = load_transformer(path)
    mine, theirs = model.config, source.config
    if (mine.width, mine.residual_blocks) != (theirs.width, theirs.residual_blocks):
        raise NSTError(
            f"--init-from '{path}' is a width {theirs.width}, {theirs.residual_blocks}-block "
            f"network; this run builds width {mine.width}, {mine.residual_blocks} blocks. "
            "Pass the same --width and --residual-blocks, or leave --init-from out."
        )
    model.load_state_dict(source.state_dict())


class CsvLog:
    """Append-only CSV; on resume the rows after the resumed step are dropped."""

    def __init__(self, path: Path, fieldnames: list[str], resume_step: int | None):
        self.path, self.fieldnames = path, fieldnames
        if resume_step is not None and path.is_file():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
            self._rewrite(rows)
        elif not path.is_file() or resume_step is None:
            self._rewrite([])
        self._fh = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames)

    def _rewrite(self, rows: list[dict]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, self.fieldnames)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        self._writer.writerow(row)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def preview_grid(photos: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Photos on the top row, their stylisations below: (1, 3, 2S, N*S)."""
    top = torch.cat(list(photos), dim=-1)
    bottom = torch.cat(list(outputs), dim=-1)
    return torch.cat([top, bottom], dim=-2).unsqueeze(0)


@torch.no_grad()
def validate(
    model: TransformerNet, loss_fn: PerceptualLoss, photos: torch.Tensor
) -> tuple[dict[str, float], torch.Tensor]:
    """Losses of the fixed validation photos (eval mode, fp32) and the stylised images."""
    was_training = model.training
    model.eval()
    outputs = torch.cat([model(p.unsqueeze(0)) for p in photos])
    targets = loss_fn.content_targets(photos)
    _, parts = loss_fn(outputs, targets)
    model.train(was_training)
    return {k: float(v) for k, v in parts.items()}, outputs


def compute_loss(
    model: torch.nn.Module, loss_fn: PerceptualLoss, x: torch.Tensor, bf16: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training batch's loss: stylise, then compare with the batch and the style.

    The content targets need the VGG only up to the content layer (relu2_2), not up to
    relu4_3 as a loop that runs the whole loss network on the photos does.
    """
    autocast = (
        torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    with autocast:
        y = model(x)  # (B, 3, S, S)
        targets = loss_fn.content_targets(x)
        return loss_fn(y.float(), targets)


def _iterations(config: TrainConfig, n_files: int, world: int) -> int:
    if config.epochs is None:
        return config.iterations
    return max(1, math.ceil(config.epochs * n_files / (config.batch_size * world)))


def _progress(total: int, initial: int, enabled: bool) -> Iterator | None:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)


def train(config: TrainConfig, resume: bool = False) -> Path | None:
    """Run (or continue) the training described by ``config``; returns the export folder."""
    env = setup_distributed()
    try:
        return _train(config, resume, env)
    finally:
        if env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, resume: bool, env: Dist) -> Path | None:
    run_dir = Path(config.out)
    device = env.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    files = data.list_images(config.data)
    if config.val_dir:
        train_files, val_files = files, data.list_images(config.val_dir)[: config.val_count]
    else:
        train_files, val_files = data.split_validation(files, config.val_count)
    iterations = _iterations(config, len(train_files), env.world)

    loss_fn = build_loss(config, device)
    model = build_model(config).to(device)
    channels_last = use_channels_last(config, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        loss_fn.net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    start, train_seconds = 0, 0.0
    if resume:
        found = ckpt.latest_checkpoint(run_dir)
        if found is not None:
            ckpt.load_checkpoint(found, model, optimizer)
            start, train_seconds = found.step, float(found.state.get("train_seconds", 0.0))
            for group in optimizer.param_groups:  # --lr may be changed on resume
                group["lr"] = config.lr
    if env.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ckpt.CHECKPOINTS).mkdir(exist_ok=True)
        atomic_write_text(run_dir / RUN_CONFIG_NAME, json.dumps(config.to_dict(), indent=2))

    wrapped: torch.nn.Module = model
    if env.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if config.compile:
        wrapped = torch.compile(wrapped)

    workers = config.workers if config.workers >= 0 else (4 if device.type == "cuda" else 0)
    dataset = data.CropDataset(train_files, config.image_size, config.seed)
    loader = data.make_loader(
        dataset,
        start,
        iterations,
        config.batch_size,
        env.rank,
        env.world,
        workers,
        pin_memory=device.type == "cuda",
    )
    # --val-count 0: no validation photos, so no previews or validation losses.
    photos = data.load_validation(val_files, config.image_size).to(device) if val_files else None
    bf16 = use_bf16(config, device)

    metrics = val_log = None
    if env.main:
        metrics = CsvLog(run_dir / METRICS_NAME, METRIC_FIELDS, start if resume else None)
        # A resume from step 0 (killed before its first checkpoint) previews step 0 again.
        val_keep = start if resume and start > 0 else None
        val_log = CsvLog(run_dir / VAL_METRICS_NAME, VAL_FIELDS, val_keep)
        (run_dir / "previews").mkdir(exist_ok=True)
        _tqdm_write(
            f"training '{config.style_id}' on {describe(device, env.world)}: steps {start}"
            f"..{iterations}, {len(train_files)} photos, batch {config.batch_size} x "
            f"{env.world}, {config.image_size} px, {'bf16' if bf16 else 'fp32'}"
            f"{', channels_last' if channels_last else ''}"
        )

    def checkpoint_extra() -> dict:
        return {
            "train_seconds": train_seconds,
            "config": config.to_dict(),
            "hardware": describe(device, env.world),
            "precision": "bf16" if bf16 else "fp32",
        }

    def preview(step: int) -> None:
        if photos is None:
            return
        losses, outputs = validate(model, loss_fn, photos)
        assert val_log is not None
        val_log.write({"step": step, **{k: f"{losses[k]:.6g}" for k in VAL_FIELDS[1:]}})
        save_image(preview_grid(photos, outputs), run_dir / "previews" / f"step_{step:07d}.jpg")

    if env.main and start == 0:
        preview(0)

    bar = _progress(iterations, start, config.progress and env.main)
    model.train()
    step = start
    last_good = ckpt.latest_checkpoint(run_dir) if env.main else None
    try:
        for batch in loader:
            t0 = time.perf_counter()
            x = batch.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, parts = compute_loss(wrapped, loss_fn, x, bf16)
            finite = _all_true(bool(torch.isfinite(loss)), env)
            if not finite:
                _stop_on_nan(step + 1, float(loss.detach()), last_good)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            values = _mean_over_ranks(
                torch.stack([parts["total"], parts["content"], parts["style"], parts["tv"]]), env
            ).tolist()
            ips = config.batch_size * env.world / max(seconds, 1e-9)
            if env.main:
                assert metrics is not None
                metrics.write(
                    {
                        "step": step,
                        "epoch": f"{(step * config.batch_size * env.world) / len(train_files):.4f}",
                        **{k: f"{v:.6g}" for k, v in zip(METRIC_FIELDS[2:6], values, strict=True)},
                        "images_per_s": f"{ips:.3f}",
                        "seconds": f"{train_seconds:.2f}",
                    }
                )
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{values[0]:.3g}",
                        content=f"{values[1]:.3g}",
                        style=f"{values[2]:.3g}",
                        img_s=f"{ips:.2f}",
                        refresh=False,
                    )
                    bar.update(1)
            out_of_time = _out_of_time(config, train_seconds, env)
            last = step == iterations or out_of_time
            if step % config.checkpoint_every == 0 or last:
                if not _all_true(_weights_finite(model), env):
                    _stop_on_nan(step, float("nan"), last_good)
                if env.main:
                    path = ckpt.save_checkpoint(
                        run_dir, step, model, optimizer, checkpoint_extra(), config.keep_checkpoints
                    )
                    last_good = ckpt.latest_checkpoint(run_dir)
                    assert last_good is not None and last_good.path == path
            if env.main and (step % config.preview_every == 0 or last):
                preview(step)
            if out_of_time:
                if env.main:
                    _tqdm_write(f"--max-minutes {config.max_minutes:g} reached at step {step}")
                break
    finally:
        if bar is not None:
            bar.close()
        for log in (metrics, val_log):
            if log is not None:
                log.close()

    if config.save_rank_weights:
        from nst.johnson import save_transformer

        save_transformer(model, run_dir / f"rank{env.rank}")
    if env.main and config.export:
        from train.export import export_run

        return export_run(run_dir)
    return None


def _out_of_time(config: TrainConfig, train_seconds: float, env: Dist) -> bool:
    """True on every rank once any rank has spent the --max-minutes budget."""
    if config.max_minutes is None:
        return False
    return not _all_true(train_seconds < config.max_minutes * 60.0, env)


def _weights_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _stop_on_nan(step: int, value: float, last_good: ckpt.Checkpoint | None) -> None:
    where = (
        f"The last good checkpoint is '{last_good.path}' (step {last_good.step}); "
        "continue from it with --resume and a lower --lr (or lower loss weights)."
        if last_good is not None
        else "No checkpoint was written before it: start again with a lower --lr."
    )
    raise NSTError(f"The loss became {value} at step {step}: training stopped. {where}")


def _tqdm_write(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def silence_known_warnings() -> None:
    """PIL's EXIF warnings on some COCO photos say nothing actionable during training."""
    warnings.filterwarnings("ignore", message="Corrupt EXIF data")
