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
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from nst.errors import NSTError
from nst.files import atomic_write_text
from nst.hardware import amx_cpu, describe
from nst.images import load_image, save_image, to_tensor
from nst.johnson import TransformerConfig, TransformerNet, load_transformer
from nst.johnson.model import is_norm_key, zero_head
from nst.losses import (
    LossWeights,
    PerceptualLoss,
    blended_gram_targets,
    gram_matrix,
    style_loss,
)
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


def build_losses(config: TrainConfig, device: torch.device) -> list[PerceptualLoss]:
    """VGG16 cut at the deepest layer asked for, and each painting's Gram targets: one
    loss per style of the run, all on the same loss network."""
    layers = list(dict.fromkeys(config.content_layers + config.style_layers))
    net = load_loss_network(
        layers,
        weights=config.vgg_weights,
        arch="vgg16",
        device=device,
        width_divisor=config.vgg_width_divisor,
    )
    losses = []
    for path, style_weight in zip(config.style_paths, config.style_weights, strict=True):
        weights = LossWeights(
            content=config.content_weight, style=style_weight, tv=config.tv_weight
        )
        style = to_tensor(load_image(path, long_side=config.style_size), device)
        grams = blended_gram_targets(net, [style], config.style_layers)
        losses.append(
            PerceptualLoss(net, config.content_layers, config.style_layers, grams, weights)
        )
    return losses


def build_loss(config: TrainConfig, device: torch.device) -> PerceptualLoss:
    """The loss of a one-style run (the first painting's of a multi-style one)."""
    return build_losses(config, device)[0]


def build_model(config: TrainConfig, losses: list[PerceptualLoss] | None = None) -> TransformerNet:
    """The run's net: fresh, warm-started from --init-from, or --init-from's net with one
    more style (--add-style; ``losses`` then picks the new rows' start)."""
    torch.manual_seed(config.seed)  # every rank starts from the same weights
    if config.add_style:
        return _with_added_style(config, losses)
    styles = style_metadata(config)
    net_config = TransformerConfig(
        width=config.width,
        residual_blocks=config.residual_blocks,
        photo_skip=config.photo_skip,
        style=styles[0] if len(styles) == 1 else {},
        styles=styles if len(styles) > 1 else [],
        training=training_metadata(config),
    )
    model = TransformerNet(net_config)
    if config.init_from:
        source = load_transformer(config.init_from)
        _initialise_from(model, source, config.init_from, _start_rows(source, model))
        model.config.training["warm_start"] = warm_start_record(source.config.training)
        if source.config.width != model.config.width:
            model.config.training["warm_start"]["widened_from"] = source.config.width
    return model


def _start_rows(source: TransformerNet, model: TransformerNet) -> list[int | None] | None:
    """Which of ``source``'s style rows each of ``model``'s styles starts from: the one
    style of a plain net for all; in a multi-style net the row of the same id, and the
    mean of its rows for a painting it lacks (None: the same styles in the same order)."""
    mine, theirs = model.config.style_ids, source.config.style_ids
    if source.config.num_styles == 1:
        return [0] * len(mine)
    if mine == theirs:
        return None
    return [theirs.index(i) if i in theirs else None for i in mine]


def _initialise_from(
    model: TransformerNet, source: TransformerNet, path: str, rows: list[int | None] | None = None
) -> None:
    """Copy the weights of a trained network of the same shape (warm start), or widen a
    narrower one into this run's width (train.widen: the same function to start from).

    ``rows``: for each of ``model``'s styles, the source style whose (gamma, beta) it
    starts from (None: the same styles in the same order).
    """
    check_widenable(source, model, path)
    if source.config.width != model.config.width:
        wide = TransformerNet(replace(source.config, width=model.config.width))
        widen_into(wide, source)
        source = wide
    if rows is None:
        model.load_state_dict(source.state_dict())
    else:
        copy_styles(model, source, rows)
    if model.config.photo_skip and not source.config.photo_skip:
        # The source's last conv paints the whole picture; with the skip it would be added
        # to the photo. Zeroed, the run starts from the photo and relearns only that conv.
        zero_head(model)


@torch.no_grad()
def copy_styles(model: TransformerNet, source: TransformerNet, rows: list[int | None]) -> None:
    """Copy ``source``'s convolutions into ``model`` (same width), and to each of
    ``model``'s style rows the (gamma, beta) of source style ``rows[i]``, or of the mean
    of the source's styles where ``rows[i]`` is None."""
    theirs = source.state_dict()
    mine = model.state_dict()
    for key, value in mine.items():
        if key not in theirs:
            raise NSTError(f"The source net has no tensor '{key}': not the same architecture.")
        old = theirs[key]
        if old.shape == value.shape and not is_norm_key(model, key):
            value.copy_(old)
            continue
        table = old if old.dim() == 2 else old.unsqueeze(0)  # (S_source, C)
        new = torch.stack([table.mean(0) if r is None else table[r] for r in rows])
        value.copy_(new if value.dim() == 2 else new[0])


def _with_added_style(config: TrainConfig, losses: list[PerceptualLoss] | None) -> TransformerNet:
    """--init-from's net with one more style row for --add-style's painting."""
    assert config.init_from and config.add_style
    source = load_transformer(config.init_from)
    base = source.config
    old = base.styles or [base.style]
    new_id = config.style_ids[0]
    if new_id in base.style_ids:
        raise NSTError(
            f"'{config.init_from}' already has a style '{new_id}'; pass --style-id to name "
            "the new one differently."
        )
    added = style_metadata(config)[0]
    net_config = replace(
        base,
        styles=[*old, added],
        style={},
        training={**training_metadata(config), "base": warm_start_record(base.training)},
    )
    model = TransformerNet(net_config)
    start = None
    if config.add_style_init == "nearest" and losses:
        start = nearest_style(source, losses[0])
    copy_styles(model, source, [*range(len(old)), start])
    model.config.training["add_style_start"] = "mean" if start is None else base.style_ids[start]
    return model


@torch.no_grad()
def nearest_style(source: TransformerNet, loss_fn: PerceptualLoss) -> int:
    """The style of ``source`` whose output Gram matrices on a fixed random-texture probe
    are closest (relative error) to ``loss_fn``'s painting: its rows are the best start."""
    generator = torch.Generator().manual_seed(0)
    probe = torch.rand(1, 3, 128, 128, generator=generator)
    probe = torch.nn.functional.avg_pool2d(probe, 5, 1, 2)  # photo-like, not white noise
    device = next(loss_fn.net.parameters()).device
    was_training = source.training
    source.eval()
    errors = []
    for i in range(source.config.num_styles):
        picture = source(probe, style=i).to(device)
        feats = loss_fn.net(picture, loss_fn.style_layers)
        errors.append(
            sum(
                float(style_loss(gram_matrix(feats[n].float()), loss_fn.style_grams[n]))
                for n in loss_fn.style_layers
            )
        )
    source.train(was_training)
    return min(range(len(errors)), key=errors.__getitem__)


def preview_grid(photos: torch.Tensor, *outputs: torch.Tensor) -> torch.Tensor:
    """Photos on the top row, their stylisations below, a row per style: (1, 3, R*S, N*S)."""
    rows = [torch.cat(list(images), dim=-1) for images in (photos, *outputs)]
    return torch.cat(rows, dim=-2).unsqueeze(0)


@torch.no_grad()
def validate(
    model: TransformerNet,
    loss_fns: PerceptualLoss | list[PerceptualLoss],
    photos: torch.Tensor,
    rows: list[int] | None = None,
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Losses of the fixed validation photos (eval mode, fp32), averaged over the styles,
    and the stylised images of each style. ``rows``: the net's style row of each loss."""
    loss_fns = [loss_fns] if isinstance(loss_fns, PerceptualLoss) else loss_fns
    rows = rows if rows is not None else list(range(len(loss_fns)))
    was_training = model.training
    model.eval()
    targets = loss_fns[0].content_targets(photos)
    totals: dict[str, float] = {}
    pictures = []
    for row, loss_fn in zip(rows, loss_fns, strict=True):
        outputs = torch.cat([model(p.unsqueeze(0), style=row) for p in photos])
        _, parts = loss_fn(outputs, targets)
        for key, value in parts.items():
            totals[key] = totals.get(key, 0.0) + float(value) / len(loss_fns)
        pictures.append(outputs)
    model.train(was_training)
    return totals, pictures


@dataclass(frozen=True)
class Stability:
    """The temporal-stability terms of a training step (TrainConfig's shift_*, noise_*)."""

    shift_weight: float = 0.0
    max_shift: int = 3
    noise_weight: float = 0.0
    noise_sigma: float = 0.02
    border: int = 8  # px left out of the shift comparison: the padding differs there

    @classmethod
    def of(cls, config: TrainConfig) -> Stability:
        return cls(config.shift_weight, config.max_shift, config.noise_weight, config.noise_sigma)

    def terms(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Weighted shift and noise terms for photos ``x`` (B, 3, S, S) and outputs ``y``."""
        out: dict[str, torch.Tensor] = {}
        if self.shift_weight > 0:
            shift = torch.randint(0, self.max_shift + 1, (2,), generator=generator)
            dy, dx = int(shift[0]), max(1, int(shift[1]))  # always some sideways motion
            # The same scene moved up-left by (dy, dx), padded back to the crop's size (a
            # fixed shape: torch.compile need not trace a new one per shift).
            moved = model(F.pad(x[..., dy:, dx:], (0, dx, 0, dy), mode="reflect"))
            b, h, w = self.border, x.shape[-2], x.shape[-1]
            diff = (
                moved[..., b : h - dy - b, b : w - dx - b].float()
                - y[..., dy + b : h - b, dx + b : w - b].float()
            )
            out["shift"] = self.shift_weight * diff.pow(2).mean()
        if self.noise_weight > 0:
            noise = torch.randn(x.shape, generator=generator).to(x) * self.noise_sigma
            diff = model(x + noise).float() - y.float()
            out["noise"] = self.noise_weight * diff.pow(2).mean()
        return out


def compute_loss(
    model: torch.nn.Module,
    loss_fn: PerceptualLoss,
    x: torch.Tensor,
    bf16: bool,
    stability: Stability | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training batch's loss: stylise, then compare with the batch and the style
    (and, with ``stability``, with the outputs of the photos shifted or noisier).

    The content targets need the VGG only up to the content layer (relu2_2), not up to
    relu4_3 as a loop that runs the whole loss network on the photos does.
    """
    autocast = (
        torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    with autocast:
        y = model(x)  # (B, 3, S, S)
        targets = loss_fn.content_targets(x)
        loss, parts = loss_fn(y.float(), targets)
        if stability is not None:
            extra = stability.terms(model, x, y, generator or torch.Generator())
            for name, value in extra.items():
                loss = loss + value
                parts[name] = value.detach()
            parts["total"] = loss.detach()
        return loss, parts


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
    finished = False
    try:
        export = _train(config, resume, ranks)
        finished = True
        return export
    finally:
        teardown_distributed(ranks, finished)


@dataclass
class _Run:
    """What one process's training holds between steps."""

    config: TrainConfig
    ranks: Ranks
    model: TransformerNet
    optimizer: torch.optim.Optimizer
    loss_fns: list[PerceptualLoss]  # one per style this run trains
    rows: list[int]  # the net's style row of each loss
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
        losses, outputs = validate(self.model, self.loss_fns, self.photos, self.rows)
        self.logs.validated(self.step, losses)
        grid = preview_grid(self.photos, *outputs)
        save_image(grid, self.run_dir / "previews" / f"step_{self.step:07d}.jpg")

    def style_of_step(self) -> int:
        """The index (into loss_fns and rows) of the style the next step trains: a pure
        function of (seed, step), so a resumed run trains the same sequence."""
        if len(self.loss_fns) == 1:
            return 0
        if self.config.style_order == "round_robin":
            cycle = self.config.style_cycle
            return cycle[self.step % len(cycle)]
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step)
        if not self.config.style_repeat:
            return int(torch.randint(0, len(self.loss_fns), (1,), generator=generator))
        counts = torch.tensor(self.config.style_counts, dtype=torch.float)
        return int(torch.multinomial(counts, 1, generator=generator))

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
    loss_fns = build_losses(config, device)
    model = build_model(config, loss_fns).to(device)
    channels_last = use_channels_last(config, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        loss_fns[0].net.to(memory_format=torch.channels_last)
    count = model.config.num_styles
    rows = [count - 1] if config.add_style else list(range(count))
    optimizer = torch.optim.Adam(parameter_groups(model, config), lr=config.lr)
    run = _Run(
        config, ranks, model, optimizer, loss_fns, rows, photos, None,
        use_bf16(config, device), channels_last,
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


def parameter_groups(model: TransformerNet, config: TrainConfig) -> list[dict[str, object]]:
    """The optimiser's groups: the convolutions, and the norm layers' (gamma, beta) tables
    at ``--norm-lr-scale`` times the rate (a style's own rows may move faster than the
    convolutions every style shares)."""
    params = trainable_parameters(model, config)
    if config.norm_lr_scale == 1.0:
        return [{"params": params}]  # one group, as checkpoints of such runs hold
    tables = {id(p) for norm in model.norms for p in (norm.weight, norm.bias)}
    convs = [p for p in params if id(p) not in tables]
    norms = [p for p in params if id(p) in tables]
    groups: list[dict[str, object]] = [{"params": norms, "scale": config.norm_lr_scale}]
    return [{"params": convs, "scale": 1.0}, *groups] if convs else groups


def trainable_parameters(model: TransformerNet, config: TrainConfig) -> list[torch.nn.Parameter]:
    """Every parameter; with --add-style only the norm layers' tables, whose gradient is
    masked to the new (last) row, and the convolutions frozen: no weight gradients."""
    if not config.add_style:
        return list(model.parameters())
    for param in model.parameters():
        param.requires_grad_(False)
    tables = []
    for norm in model.norms:
        mask = torch.zeros(norm.weight.shape[0], 1)
        mask[-1] = 1.0
        for table in (norm.weight, norm.bias):
            table.requires_grad_(True)
            table.register_hook(lambda grad, mask=mask: grad * mask.to(grad))
            tables.append(table)
    return tables


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
            f"training '{', '.join(config.style_ids)}' on {describe(device, ranks.world)}: steps "
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
    index = run.style_of_step()
    # The style is set outside the (maybe compiled, maybe DDP-wrapped) forward.
    run.model.select_style(run.rows[index])
    stability = Stability.of(run.config)
    generator = torch.Generator().manual_seed(run.config.seed * 7_919 + run.step)
    loss, parts = compute_loss(
        wrapped, run.loss_fns[index], x, run.bf16,
        stability if stability.shift_weight or stability.noise_weight else None, generator,
    )  # fmt: skip
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
    """The rate of the next step: --lr, or falling linearly to --lr-final over the run,
    times the --lr-warmup ramp over the first steps.

    Progress is the larger of steps done / iterations and time spent / --max-minutes, so a
    time-budgeted run ends its decay when its time ends.
    """
    warmup = min(1.0, (step + 1) / config.lr_warmup) if config.lr_warmup else 1.0
    if config.lr_final is None:
        return config.lr * warmup
    progress = step / max(1, iterations)
    if config.max_minutes is not None:
        progress = max(progress, train_seconds / (config.max_minutes * 60.0))
    progress = min(1.0, progress)
    return (config.lr + (config.lr_final - config.lr) * progress) * warmup


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """``lr`` for every group, times the group's own ``scale`` (the norm tables')."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("scale", 1.0)


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
