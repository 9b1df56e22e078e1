"""The training loop of Johnson et al. 2016 on the project's losses and loss network.

One process trains on one device; under ``torchrun`` each process takes its share of every
step (:mod:`train.distributed`). Rank 0 alone writes checkpoints (:mod:`train.checkpoint`),
previews, the CSV logs (:mod:`train.metrics`) and the export (:mod:`train.export`).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from nst.errors import NSTError
from nst.files import atomic_write_text
from nst.hardware import amx_cpu, describe
from nst.images import load_image, save_image, to_tensor
from nst.johnson import TransformerConfig, TransformerNet, load_transformer
from nst.johnson.model import zero_head
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets
from nst.precision import bf16_autocast
from nst.vgg import load_loss_network
from train import checkpoint as ckpt
from train import data
from train.config import TrainConfig
from train.distributed import (
    Ranks,
    all_true,
    mean_over_ranks,
    setup_distributed,
    teardown_distributed,
    wrap_for_ranks,
)
from train.export import export_run, style_metadata, training_metadata, warm_start_record
from train.metrics import RunLogs
from train.widen import check_widenable, widen_into

RUN_CONFIG_NAME = "run.json"


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: default on GPUs with bf16 units and on CPUs with bf16 arithmetic
    (there faster than fp32: benchmarks/bench_train.py); on request elsewhere.
    The losses and Gram matrices stay fp32 (nst.losses). The policy: nst.precision."""
    return bf16_autocast(config.precision, device)


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """channels_last: default on GPUs, and on CPUs with AMX when training runs bf16 (there
    oneDNN's bf16 kernels want it: benchmarks/bench_train.py); NCHW elsewhere, where it was
    measured not to pay."""
    if config.channels_last == "auto":
        return device.type == "cuda" or (
            device.type == "cpu" and amx_cpu() and use_bf16(config, device)
        )
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


def build_model(config: TrainConfig) -> TransformerNet:
    torch.manual_seed(config.seed)  # every rank starts from the same weights
    net_config = TransformerConfig(
        width=config.width,
        residual_blocks=config.residual_blocks,
        photo_skip=config.photo_skip,
        style=style_metadata(config),
        training=training_metadata(config),
    )
    model = TransformerNet(net_config)
    if config.init_from:
        source = _initialise_from(model, config.init_from)
        model.config.training["warm_start"] = warm_start_record(source.config.training)
        if source.config.width != model.config.width:
            model.config.training["warm_start"]["widened_from"] = source.config.width
    return model


def _initialise_from(model: TransformerNet, path: str) -> TransformerNet:
    """Copy the weights of a trained network of the same shape (warm start), or widen a
    narrower one into this run's width (train.widen: the same function to start from)."""
    source = load_transformer(path)
    check_widenable(source, model, path)
    if source.config.width == model.config.width:
        model.load_state_dict(source.state_dict())
    else:
        widen_into(model, source)
    if model.config.photo_skip and not source.config.photo_skip:
        # The source's last conv paints the whole picture; with the skip it would be added
        # to the photo. Zeroed, the run starts from the photo and relearns only that conv.
        zero_head(model)
    return source


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
    ranks = setup_distributed()
    try:
        return _train(config, resume, ranks)
    finally:
        teardown_distributed(ranks)


@dataclass
class _Run:
    """What one process's training holds between steps."""

    config: TrainConfig
    ranks: Ranks
    model: TransformerNet
    optimizer: torch.optim.Optimizer
    loss_fn: PerceptualLoss
    photos: torch.Tensor | None  # validation photos; None with --val-count 0
    logs: RunLogs | None  # rank 0 only
    bf16: bool
    channels_last: bool
    step: int = 0
    train_seconds: float = 0.0
    last_good: ckpt.Checkpoint | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)

    def preview(self) -> None:
        """Validation losses and a preview grid of the fixed photos (rank 0)."""
        if self.photos is None or self.logs is None:
            return
        losses, outputs = validate(self.model, self.loss_fn, self.photos)
        self.logs.validated(self.step, losses)
        grid = preview_grid(self.photos, outputs)
        save_image(grid, self.run_dir / "previews" / f"step_{self.step:07d}.jpg")

    def checkpoint(self) -> None:
        if not all_true(_weights_finite(self.model), self.ranks):
            _stop_on_nan(self.step, float("nan"), self.last_good)
        if not self.ranks.main:
            return
        extra = {
            "train_seconds": self.train_seconds,
            "config": self.config.to_dict(),
            "hardware": describe(self.ranks.device, self.ranks.world),
            "precision": "bf16" if self.bf16 else "fp32",
        }
        path = ckpt.save_checkpoint(
            self.run_dir, self.step, self.model, self.optimizer, extra, self.config.keep_checkpoints
        )
        self.last_good = ckpt.latest_checkpoint(self.run_dir)
        assert self.last_good is not None and self.last_good.path == path


def _split_files(config: TrainConfig) -> tuple[list[Path], list[Path]]:
    """(training photos, validation photos)."""
    files = data.list_images(config.data)
    if config.val_dir:
        return files, data.list_images(config.val_dir)[: config.val_count]
    return data.split_validation(files, config.val_count)


def _tune_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _resume_from(run: _Run) -> None:
    """Load the newest checkpoint, if any, into the model and optimiser."""
    found = ckpt.latest_checkpoint(run.run_dir)
    if found is None:
        return
    ckpt.load_checkpoint(found, run.model, run.optimizer)
    # The rate is set before every step (learning_rate), so a --lr given on resume applies.
    run.step, run.train_seconds = found.step, float(found.state.get("train_seconds", 0.0))


def _start(config: TrainConfig, resume: bool, ranks: Ranks, photos: torch.Tensor | None) -> _Run:
    """Loss, model (fresh or resumed), optimiser, run folder and logs."""
    device = ranks.device
    loss_fn = build_loss(config, device)
    model = build_model(config).to(device)
    channels_last = use_channels_last(config, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        loss_fn.net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    run = _Run(
        config, ranks, model, optimizer, loss_fn, photos, None, use_bf16(config, device),
        channels_last,
    )  # fmt: skip
    if resume:
        _resume_from(run)
    if ranks.main:
        (run.run_dir / ckpt.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        (run.run_dir / "previews").mkdir(exist_ok=True)
        atomic_write_text(run.run_dir / RUN_CONFIG_NAME, json.dumps(config.to_dict(), indent=2))
        run.logs = RunLogs(run.run_dir, run.step, resume)
        run.last_good = ckpt.latest_checkpoint(run.run_dir)
    return run


def _train(config: TrainConfig, resume: bool, ranks: Ranks) -> Path | None:
    device = ranks.device
    _tune_backends(device)
    train_files, val_files = _split_files(config)
    iterations = _iterations(config, len(train_files), ranks.world)
    # --val-count 0: no validation photos, so no previews or validation losses.
    photos = None
    if val_files:
        photos = data.load_validation(val_files, config.image_size, config.photo_size).to(device)
    run = _start(config, resume, ranks, photos)
    wrapped = wrap_for_ranks(run.model, ranks)
    if config.compile:
        wrapped = torch.compile(wrapped)
    workers = config.workers if config.workers >= 0 else (4 if device.type == "cuda" else 0)
    loader = data.make_loader(
        data.CropDataset(train_files, config.image_size, config.seed, config.photo_size),
        run.step,
        iterations,
        config.batch_size,
        ranks.rank,
        ranks.world,
        workers,
        pin_memory=device.type == "cuda",
    )
    if ranks.main:
        _tqdm_write(
            f"training '{config.style_id}' on {describe(device, ranks.world)}: steps "
            f"{run.step}..{iterations}, {len(train_files)} photos, batch {config.batch_size} x "
            f"{ranks.world}, {config.image_size} px"
            f"{f' crops of photos at {config.photo_size} px' if config.photo_size else ''}, "
            f"{'bf16' if run.bf16 else 'fp32'}"
            f"{', channels_last' if run.channels_last else ''}"
        )
        if run.step == 0:
            run.preview()
    bar = _progress(iterations, run.step, config.progress and ranks.main)
    run.model.train()
    try:
        for batch in loader:
            losses, seconds = _optimise(run, wrapped, batch, iterations)
            _log_step(run, losses, seconds, len(train_files), bar)
            out_of_time = _out_of_time(config, run.train_seconds, ranks)
            last = run.step == iterations or out_of_time
            if run.step % config.checkpoint_every == 0 or last:
                run.checkpoint()
            if ranks.main and (run.step % config.preview_every == 0 or last):
                run.preview()
            if out_of_time:
                if ranks.main:
                    _tqdm_write(f"--max-minutes {config.max_minutes:g} reached at step {run.step}")
                break
    finally:
        if bar is not None:
            bar.close()
        if run.logs is not None:
            run.logs.close()
    return _finish(run)


def _optimise(
    run: _Run, wrapped: torch.nn.Module, batch: torch.Tensor, iterations: int
) -> tuple[list[float], float]:
    """One optimiser step; returns the batch's losses (averaged over ranks) and its time."""
    t0 = time.perf_counter()
    x = batch.to(run.ranks.device, non_blocking=True)
    if run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    lr = learning_rate(run.config, run.step, run.train_seconds, iterations)
    set_learning_rate(run.optimizer, lr)
    loss, parts = compute_loss(wrapped, run.loss_fn, x, run.bf16)
    if not all_true(bool(torch.isfinite(loss)), run.ranks):
        _stop_on_nan(run.step + 1, float(loss.detach()), run.last_good)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.step += 1
    seconds = time.perf_counter() - t0
    run.train_seconds += seconds
    stacked = torch.stack([parts["total"], parts["content"], parts["style"], parts["tv"]])
    return mean_over_ranks(stacked, run.ranks).tolist(), seconds


def _log_step(run: _Run, losses: list[float], seconds: float, n_files: int, bar) -> None:
    if run.logs is None:
        return
    images = run.config.batch_size * run.ranks.world
    ips = images / max(seconds, 1e-9)
    run.logs.step(run.step, run.step * images / n_files, losses, ips, run.train_seconds)
    if bar is not None:
        total, content, style, _tv = losses
        bar.set_postfix(
            loss=f"{total:.3g}", content=f"{content:.3g}", style=f"{style:.3g}",
            img_s=f"{ips:.2f}", refresh=False,
        )  # fmt: skip
        bar.update(1)


def _finish(run: _Run) -> Path | None:
    if run.config.save_rank_weights:
        from nst.johnson import save_transformer

        save_transformer(run.model, run.run_dir / f"rank{run.ranks.rank}")
    if run.ranks.main and run.config.export:
        return export_run(run.run_dir)
    return None


def learning_rate(config: TrainConfig, step: int, train_seconds: float, iterations: int) -> float:
    """The rate of the next step: --lr, or falling linearly to --lr-final over the run.

    Progress is the larger of steps done / iterations and time spent / --max-minutes, so a
    time-budgeted run ends its decay when its time ends.
    """
    if config.lr_final is None:
        return config.lr
    progress = step / max(1, iterations)
    if config.max_minutes is not None:
        progress = max(progress, train_seconds / (config.max_minutes * 60.0))
    progress = min(1.0, progress)
    return config.lr + (config.lr_final - config.lr) * progress


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _out_of_time(config: TrainConfig, train_seconds: float, ranks: Ranks) -> bool:
    """True on every rank once any rank has spent the --max-minutes budget."""
    if config.max_minutes is None:
        return False
    return not all_true(train_seconds < config.max_minutes * 60.0, ranks)


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
