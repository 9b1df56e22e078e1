"""Multi-style nets (conditional instance norm, Dumoulin et al. 2017) against the dedicated
one-style nets and Gatys-100: the judged losses per style, and the flicker numbers.

    python -m docs.multistyle.study score --model runs/pilot_plain/export --label plain
    python -m docs.multistyle.study score --model runs/pilot_plain --label plain  # newest ckpt
    python -m docs.multistyle.study report
    python -m docs.multistyle.study curve --model runs/add_udnie --label udnie
    python -m docs.multistyle.study grid --model runs/multi/export [--out grid.jpg]
    python -m docs.multistyle.study discs --model zoo/models/starry_night [--size 512]
    python -m docs.multistyle.study steady --model zoo/models/starry_night [--steady 0.7]
    python -m docs.multistyle.study phases --model zoo/models/starry_night
    python -m docs.multistyle.study evaluation --label plain --out evaluation.json

``evaluation`` writes one label's scores as the catalogue's evaluation records (style id ->
record), for ``python -m zoo add --evaluation``; ``paintings.json`` beside this file is its
``--info`` (titles, painters, years and licences of the paintings).

``curve`` judges every checkpoint of an ``--add-style`` run (the new style only) against
its training minutes: the new-style curve, in ``docs/multistyle/curves.json``.

``score`` judges every style of the net on the held-out photos at 512 px (``nst.judge``:
content relu2_2, style relu1_2...relu4_3, total = content + 10 x style) against Gatys-100
from the photo on the same loss and, where the zoo bundles a net of that painting, against
it. The scores are kept in ``docs/multistyle/scores.json`` (one entry per label), so a
table can be filled in across machines; ``report`` writes ``docs/multistyle/results.md``
from them. ``grid`` draws every style of a net on held-out photos (a face and skies, where
Starry Night's discs show), one row per style beside its painting. ``steady`` judges the
last frame of a still and a panning clip with and without ``nst.temporal.FrameSmoother``;
``phases`` averages a net over offsets of its input on the stride grid.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import tempfile
import time
from pathlib import Path

import torch

from docs.common import CONTENT, PHOTOS, ROOT, STYLES, VGG16, labelled_grid
from docs.johnson_recipes.study import (
    gatys_reference,
    mean_reference,
    photos,
    score_net,
    zoo_reference,
)
from nst.color import rgb_to_ycbcr
from nst.hardware import summary
from nst.images import load_image, to_pil, to_tensor
from nst.johnson import TransformerNet, load_transformer, stylize
from nst.judge import Judge, Score, judge_network

HERE = Path(__file__).resolve().parent
#: The grid's photos: sky, a face, an animal, a town; none is a training photo.
GRID_PHOTOS = ("golden_gate.jpg", "kodim04_portrait_red_hat.png", "dog.jpg", "tubingen.jpg")
SCORES = HERE / "scores.json"
CURVES = HERE / "curves.json"
#: Gatys-100's mean scores for the paintings the zoo's own reference lacks, kept here once
#: measured (Gatys-100 at 512 px is several CPU-minutes per photo).
REFERENCE = HERE / "gatys_reference.json"
STYLE_WEIGHT = 10.0


def keep(path: Path, label: str, entry: dict) -> None:
    """Add ``entry`` under ``label`` to a JSON file, locked: two scorings may end at once."""
    with open(Path(tempfile.gettempdir()) / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = json.loads(path.read_text()) if path.is_file() else {}
        kept[label] = entry
        path.write_text(json.dumps(kept, indent=2) + "\n")


def total(score: Score) -> float:
    return score.content + STYLE_WEIGHT * score.style


def painting_of(style_id: str) -> Path:
    for suffix in (".jpg", ".png"):
        path = STYLES / f"{style_id}{suffix}"
        if path.is_file():
            return path
    raise SystemExit(f"no painting for style '{style_id}' in {STYLES}")


def reference(style_id: str, judge: Judge, shots: dict[str, torch.Tensor]) -> Score:
    """Gatys-100's mean score for a painting: the zoo's kept reference, this study's, or run
    now (and kept)."""
    kept = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {}
    if style_id in kept:
        return Score(kept[style_id]["content"], kept[style_id]["style"])
    painting = painting_of(style_id)
    zoo_kept = json.loads((ROOT / "docs/zoo_training/gatys_reference.json").read_text())
    if style_id in zoo_kept["styles"]:
        return zoo_reference(style_id, painting, judge, shots)
    score = mean_reference(gatys_reference(painting, judge, shots))
    measured = {"machine": summary("cpu"), "date": time.strftime("%Y-%m-%d")}
    keep(REFERENCE, style_id, {"content": score.content, "style": score.style, **measured})
    return score


def resolve(model: Path) -> tuple[TransformerNet, dict]:
    """A net from an export folder, or the newest checkpoint of a run folder."""
    if (model / "checkpoints").is_dir():
        newest = sorted((model / "checkpoints").glob("step_*"))[-1]
        state = json.loads((newest / "state.json").read_text())
        return load_transformer(newest), {
            "step": state.get("step"),
            "train_seconds": state.get("train_seconds"),
            "source": str(newest.relative_to(ROOT) if newest.is_relative_to(ROOT) else newest),
        }
    net = load_transformer(model)
    training = net.config.training
    return net, {"step": training.get("steps"), "train_seconds": training.get("train_seconds")}


def score(args: argparse.Namespace) -> None:
    net, about = resolve(args.model)
    vgg = judge_network(str(VGG16), "cpu")
    shots = photos()
    entry = {**about, "machine": summary("cpu"), "date": time.strftime("%Y-%m-%d"),
             "styles": {}}  # fmt: skip
    for style_id in net.config.style_ids:
        if args.only and style_id not in args.only:
            continue
        painting = painting_of(style_id)
        judge = Judge(vgg, painting, 512)
        gatys = reference(style_id, judge, shots)
        mine, _ = score_net(net.with_style(style_id), judge, shots)
        row = {"content": mine.content, "style": mine.style, "total": total(mine),
               "gatys": {"content": gatys.content, "style": gatys.style}}  # fmt: skip
        dedicated = ROOT / "zoo" / "models" / style_id
        if dedicated.is_dir():
            own, _ = score_net(load_transformer(dedicated), judge, shots)
            row["dedicated"] = {"content": own.content, "style": own.style, "total": total(own)}
        entry["styles"][style_id] = row
        print(style_id, json.dumps(row), flush=True)
    keep(SCORES, args.label, entry)


def report(_: argparse.Namespace) -> None:
    kept = json.loads(SCORES.read_text())
    lines = [
        f"{len(PHOTOS)} held-out photos ({', '.join(PHOTOS)}) at 512 px, judged by `nst.judge`; "
        f"total = content + {STYLE_WEIGHT:g} x style; Gatys-100 from the photo on the same loss.",
        "",
        "| net | step | training min | style | content / Gatys | style / Gatys | total "
        "| dedicated net's total | vs dedicated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, entry in kept.items():
        minutes = float(entry.get("train_seconds") or 0) / 60
        for style_id, row in entry["styles"].items():
            g = row["gatys"]
            own = row.get("dedicated")
            versus = f"{100 * (row['total'] / own['total'] - 1):+.1f} %" if own else "-"
            own_total = f"{own['total']:.3f}" if own else "-"
            lines.append(
                f"| {label} | {entry.get('step')} | {minutes:.0f} | {style_id} "
                f"| {row['content'] / g['content']:.2f} | {row['style'] / g['style']:.2f} "
                f"| {row['total']:.3f} | {own_total} | {versus} |"
            )
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def curve(args: argparse.Namespace) -> None:
    """The judged scores of the added style at every checkpoint of an --add-style run."""
    vgg = judge_network(str(VGG16), "cpu")
    shots = photos()
    points = []
    for folder in sorted((args.model / "checkpoints").glob("step_*")):
        state = json.loads((folder / "state.json").read_text())
        net = load_transformer(folder)
        style_id = net.config.style_ids[-1]
        judge = Judge(vgg, painting_of(style_id), 512)
        gatys = reference(style_id, judge, shots)
        mine, _ = score_net(net.with_style(style_id), judge, shots)
        points.append({"step": state.get("step"), "minutes": state.get("train_seconds", 0) / 60,
                       "content": mine.content / gatys.content,
                       "style": mine.style / gatys.style})  # fmt: skip
        print(style_id, json.dumps(points[-1]), flush=True)
    keep(CURVES, args.label, {"machine": summary("cpu"), "date": time.strftime("%Y-%m-%d"),
                              "points": points})  # fmt: skip


def grid(args: argparse.Namespace) -> None:
    """Every style of the net (an added style's export included) on GRID_PHOTOS."""
    net, _ = resolve(args.model)
    shots = [load_image(CONTENT / name) for name in GRID_PHOTOS]
    rows = []
    entries = net.config.styles or [net.config.style]  # a one-style net has its one
    if args.only:
        entries = [entry for entry in entries if entry["id"] in args.only]
    for entry in entries:
        style_id = entry["id"]
        choice = style_id if net.config.num_styles > 1 else None
        painted = [stylize(net, shot, size=args.size, style=choice, engine="torch")
                   for shot in shots]  # fmt: skip
        rows.append((entry.get("title", style_id), [load_image(painting_of(style_id)), *painted]))
        print(style_id, flush=True)
    labelled_grid(rows, args.out, cell=args.cell, label_width=150, quality=88)
    print(f"machine: {summary('cpu')}")


def yellow(image: torch.Tensor) -> torch.Tensor:
    """Where (1, 3, H, W) in [0, 1] is the light yellow of Starry Night's stars (a boolean
    (H, W) mask): bright (Y over 0.55), well on the yellow side of blue (Cb at least 0.08
    below neutral), and not orange or skin (Cr under 0.08 above neutral)."""
    y, cb, cr = rgb_to_ycbcr(image)[0]
    return (y > 0.55) & (cb < -0.08) & (cr < 0.08)


def discs(args: argparse.Namespace) -> None:
    """The share of each GRID_PHOTOS picture painted in the stars' yellow where the photo
    itself is not yellow: how much of a face or a sky Starry Night covers with discs."""
    net, _ = resolve(args.model)
    row = args.only[0] if args.only else "starry_night"
    choice = row if net.config.num_styles > 1 else None
    shares = {}
    for name in GRID_PHOTOS:
        photo = to_tensor(load_image(CONTENT / name, long_side=args.size))
        out = to_tensor(stylize(net, photo, style=choice, engine="torch"))
        shares[name] = float((yellow(out) & ~yellow(photo)).float().mean())
    mean = sum(shares.values()) / len(shares)
    print(json.dumps({"model": str(args.model), "size": args.size, "mean": mean, **shares}))


class PhaseMean(torch.nn.Module):
    """A net run on the photo moved by each offset in ``offsets`` (its output moved back),
    the outputs mixed per pixel: "mean" averages them; "pick" takes each pixel from the pass
    that puts it at the start of a stride-4 cell; "tent" weights the passes by how near the
    middle of a cell they put it. Over all 16 offsets, "pick" is exactly shift-equivariant."""

    def __init__(self, net: torch.nn.Module, offsets: list[tuple[int, int]], mix: str) -> None:
        super().__init__()
        self.net, self.offsets, self.mix = net, offsets, mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.offsets == [(0, 0)]:
            return self.net(x)
        h, w = x.shape[-2:]
        padded = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
        total, weights = torch.zeros_like(x), torch.zeros_like(x[:, :1])
        rows, cols = torch.arange(h).view(-1, 1), torch.arange(w).view(1, -1)
        for dy, dx in self.offsets:
            out = self.net(padded[..., dy : dy + h + 4, dx : dx + w + 4])
            out = out[..., 4 - dy : 4 - dy + h, 4 - dx : 4 - dx + w]
            py, px = (rows + 4 - dy) % 4, (cols + 4 - dx) % 4  # the pixel's place in its cell
            if self.mix == "pick":
                weight = ((py == 0) & (px == 0)).float()
            elif self.mix == "tent":
                weight = (2 - (py - 1.5).abs()) * (2 - (px - 1.5).abs())
            else:
                weight = torch.ones(h, w)
            total += out * weight
            weights += weight
        return total / weights


def phases(args: argparse.Namespace) -> None:
    """Flicker and judged total of a one-style net mixed over offsets of its input on the
    stride grid, without training: the mean of 4 offsets (0 or 2 px each way), or all 16
    picked or tent-weighted per pixel (:class:`PhaseMean`)."""
    import itertools

    import benchmarks.bench_flicker as flicker

    net, _ = resolve(args.model)
    net.eval()
    style_id = net.config.style_ids[0]
    judge = Judge(judge_network(str(VGG16), "cpu"), painting_of(style_id), 512)
    held_out = photos()
    gatys = reference(style_id, judge, held_out)
    shots = [to_tensor(load_image(CONTENT / name, long_side=512)) for name in flicker.PHOTOS]
    variants = {
        "plain": ([(0, 0)], "mean"),
        "4 mean": (list(itertools.product((0, 2), repeat=2)), "mean"),
    }
    for mix in ("mean", "pick", "tent"):
        variants[f"16 {mix}"] = (list(itertools.product(range(4), repeat=2)), mix)
    for label, (offsets, mix) in variants.items():
        model = PhaseMean(net, offsets, mix).eval()
        mine, _ = score_net(model, judge, held_out)

        def paint(photo: torch.Tensor, model: PhaseMean = model) -> torch.Tensor:
            with torch.inference_mode():
                return model(photo).clamp(0, 1)

        result = flicker.measure(paint, shots)  # the benchmark's measures, through the mix
        row = {"variant": label, "total": round(total(mine), 3),
               "content_x": round(mine.content / gatys.content, 2),
               "style_x": round(mine.style / gatys.style, 2),
               "shift": round(result.shift, 2), "gain": round(result.gain, 2)}  # fmt: skip
        print(json.dumps(row), flush=True)
    print(f"machine: {summary('cpu')}")


def steady(args: argparse.Namespace) -> None:
    """What steady strokes cost a picture: the judged total of the last frame of
    bench_flicker's still and pan clips, shown through nst.temporal.FrameSmoother (weight
    --steady) and as the net made it; and a figure of the pan's last frames."""
    from benchmarks.bench_flicker import pan_clip, smooth, still_clip

    net, _ = resolve(args.model)
    row = args.only[0] if args.only else None
    if row:
        net = net.with_style(row)
    net.eval()
    style_id = row or net.config.style_ids[0]
    judge = Judge(judge_network(str(VGG16), "cpu"), painting_of(style_id), 512)
    sums: dict[str, float] = {}
    figure = []
    held_out = photos()
    for seed, (name, photo) in enumerate(held_out.items()):
        with torch.inference_mode():
            clips = {"still": still_clip(photo, seed), "pan": pan_clip(photo)}
            for clip, frames in clips.items():
                outs = [net(frame).clamp(0, 1) for frame in frames]
                shown = smooth(frames, outs, args.steady)
                truth = photo if clip == "still" else frames[-1]
                for kind, picture in (("off", outs[-1]), ("steady", shown[-1])):
                    key = f"{clip} {kind}"
                    score = total(judge.score(picture, truth))
                    sums[key] = sums.get(key, 0.0) + score / len(held_out)
                if clip == "pan":
                    figure.append((name, [to_pil(x) for x in (frames[-1], outs[-1], shown[-1])]))
    entry = {
        "model": str(args.model),
        "style": style_id,
        "steady": args.steady,
        "machine": summary("cpu"),
        "date": time.strftime("%Y-%m-%d"),
        "totals": sums,
    }
    print(json.dumps(entry), flush=True)
    if args.out:
        labelled_grid(figure, args.out, cell=args.cell, label_width=150, quality=90)


def evaluation(args: argparse.Namespace) -> None:
    """One label's scores as catalogue evaluation records: what the model card shows."""
    entry = json.loads(SCORES.read_text())[args.label]
    records = {}
    for style_id, row in entry["styles"].items():
        gatys = row["gatys"]
        records[style_id] = {
            "photos": list(PHOTOS),
            "size": 512,
            "content": round(row["content"], 3),
            "style": round(row["style"], 4),
            "total": round(row["total"], 3),
            "gatys_100": {"content": round(gatys["content"], 3), "style": round(gatys["style"], 4)},
            "ratio": {
                "content": round(row["content"] / gatys["content"], 2),
                "style": round(row["style"] / gatys["style"], 2),
            },
            "judged": entry["date"],
        }
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {args.out}: {', '.join(records)}")


def main() -> None:
    commands = {
        "score": score,
        "report": report,
        "curve": curve,
        "grid": grid,
        "discs": discs,
        "steady": steady,
        "phases": phases,
        "evaluation": evaluation,
    }
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=list(commands))
    parser.add_argument("--model", type=Path, help="score: an export folder or a run folder")
    parser.add_argument("--label", help="score, evaluation: the name of this net in the tables")
    parser.add_argument(
        "--only", nargs="*", help="score, grid: these style ids only; discs: the row to judge"
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--steady", type=float, default=0.7, help="steady: the smoother's weight")
    parser.add_argument("--size", type=int, default=384, help="grid: the photos' long side")
    parser.add_argument("--cell", type=int, default=180, help="grid: a picture's cell (px)")
    parser.add_argument(
        "--out", type=Path, help="grid: the figure (default grid.jpg here); evaluation: the JSON"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "grid" and args.out is None:
        args.out = HERE / "grid.jpg"
    if args.command == "evaluation" and (args.out is None or args.label is None):
        parser.error("evaluation needs --label and --out")
    commands[args.command](args)


if __name__ == "__main__":
    main()
