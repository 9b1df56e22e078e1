"""Which Gatys is the Johnson nets' bar? Gatys from the photo and from white noise, judged
every 25 L-BFGS iterations, against the zoo's nets.

    python -m docs.gatys_baselines.study run [--only starry_night,great_wave]
                                             [--inits noise,content]
    python -m docs.gatys_baselines.study report [--out docs/gatys_baselines/results]

Johnson et al. 2016 compare their nets' loss with Gatys' as it runs (their Fig. 5), and
their baseline, like Johnson's neural-style, starts from white noise. The zoo's quality
target (content at most 1.2x, style at most 2.5x Gatys-100's) compares with Gatys-100
started from the photo, which keeps the photo from the first iteration. This script
measures both on the judge's one loss (``nst.judge``: content relu2_2, style
relu1_2..relu4_3, content 1 / style 10), on the four held-out photos at 512 px, with the
loss network in fp32 (as the kept Gatys-100 reference).

``run`` caches each (painting, start) in runs/gatys_baselines/ (ignored by git), with the
pictures at 50 and 100 iterations. ``report`` writes ``<out>.md`` (the table: mean content,
style and content + 10 x style per start and iteration count, and each bundled net's),
``<out>.json`` (those means, kept in the repo) and ``<out>.jpg`` (The Starry Night's
pictures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from PIL import Image

from docs.common import (
    CONTENT,
    PHOTOS,
    ROOT,
    VGG16,
    evaluate,
    grid,
    require_vgg16,
)
from docs.common import STYLES as PAINTINGS
from nst.gatys import GatysConfig, gatys_steps
from nst.hardware import summary
from nst.images import load_image, to_pil, to_tensor
from nst.judge import CONTENT_LAYERS, STYLE_LAYERS, Judge, judge_network

RUNS = ROOT / "runs" / "gatys_baselines"
SIZE = 512
ITERATIONS = 100
EVERY = 25
PICTURES_AT = (50, 100)
STYLES = ("starry_night", "great_wave", "the_scream", "composition_vii")
INITS = ("content", "noise")
STYLE_WEIGHT = 10.0  # the judge's total: content + 10 x style


def cache_path(style_id: str, init: str) -> Path:
    return RUNS / f"{style_id}_{init}_{SIZE}.json"


def picture_path(style_id: str, init: str, iteration: int, photo: str) -> Path:
    return RUNS / style_id / f"{init}_{iteration}_{Path(photo).stem}.png"


def run_one(style_id: str, init: str, judge: Judge, photos: dict) -> dict:
    """Gatys from ``init`` on every photo, judged every EVERY iterations; cached."""
    cache = cache_path(style_id, init)
    if cache.is_file():
        return json.loads(cache.read_text())
    config = GatysConfig(
        size=SIZE,
        iterations=ITERATIONS,
        scales=1,
        init=init,
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
        vgg_weights=str(VGG16),
        report_every=EVERY,
        precision="fp32",
    )
    painting = load_image(PAINTINGS / f"{style_id}.jpg")
    result: dict = {"machine": summary("cpu"), "init": init, "photos": {}}
    for name, photo in photos.items():
        t0 = time.perf_counter()
        scores = {}
        for progress in gatys_steps(photo, [painting], config, device="cpu"):
            score = judge.score(to_tensor(progress.image), photo)
            scores[str(progress.iteration)] = {"content": score.content, "style": score.style}
            if progress.iteration in PICTURES_AT:
                path = picture_path(style_id, init, progress.iteration, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                progress.image.save(path)
            print(f"{style_id} {init} {name} {progress.iteration}: {score}", flush=True)
        result["photos"][name] = {"scores": scores, "seconds": time.perf_counter() - t0}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=2))
    return result


def load_photos() -> dict:
    return {n: to_tensor(load_image(CONTENT / n, long_side=SIZE)) for n in PHOTOS}


def means(result: dict) -> dict[int, tuple[float, float]]:
    """Iteration -> (mean content, mean style) over the photos."""
    per_photo = [p["scores"] for p in result["photos"].values()]
    iterations = sorted({int(i) for scores in per_photo for i in scores})
    return {
        i: (
            sum(s[str(i)]["content"] for s in per_photo) / len(per_photo),
            sum(s[str(i)]["style"] for s in per_photo) / len(per_photo),
        )
        for i in iterations
    }


def total(content: float, style: float) -> float:
    return content + STYLE_WEIGHT * style


def style_rows(style_id: str, kept: dict, zoo_score: tuple[float, float]) -> list[str]:
    rows = []
    for init in INITS:
        for iteration, (content, style) in sorted(kept[init].items(), key=lambda kv: int(kv[0])):
            if int(iteration) == 0:
                continue
            start = "the photo" if init == "content" else "white noise"
            rows.append(
                f"| {style_id} | Gatys-{iteration} from {start} | {content:.3f} | {style:.4f} "
                f"| {total(content, style):.3f} |"
            )
    content, style = zoo_score
    rows.append(
        f"| {style_id} | **the bundled net** | {content:.3f} | {style:.4f} "
        f"| **{total(content, style):.3f}** |"
    )
    return rows


def report(out: Path) -> None:
    import zoo

    net = judge_network(str(VGG16), "cpu")
    photos = load_photos()
    kept: dict = {"photos": list(PHOTOS), "size": SIZE, "styles": {}}
    lines = [
        "| style | picture | content | style | content + 10 x style |",
        "|---|---|---|---|---|",
    ]
    machines = set()
    seconds: list[float] = []
    pictures: list[tuple[str, list[Image.Image]]] = []
    for style_id in STYLES:
        if not all(cache_path(style_id, init).is_file() for init in INITS):
            print(f"{style_id}: not run yet (python -m docs.gatys_baselines.study run)")
            continue
        judge = Judge(net, PAINTINGS / f"{style_id}.jpg", SIZE)
        results = {init: json.loads(cache_path(style_id, init).read_text()) for init in INITS}
        machines |= {r["machine"] for r in results.values()}
        seconds += [p["seconds"] for r in results.values() for p in r["photos"].values()]
        kept["styles"][style_id] = {
            init: {str(i): [round(c, 4), round(s, 5)] for i, (c, s) in means(r).items()}
            for init, r in results.items()
        }
        images, content, style = evaluate(
            zoo.load(style_id, progress=False), list(photos.values()), judge
        )
        kept["styles"][style_id]["bundled_net"] = [round(content, 4), round(style, 5)]
        table_view = {
            init: {i: tuple(v) for i, v in kept["styles"][style_id][init].items()} for init in INITS
        }
        lines += style_rows(style_id, table_view, (content, style))
        if style_id == "starry_night":
            pictures = [("photo", [to_pil(p) for p in photos.values()])]
            for init in INITS:
                for iteration in PICTURES_AT:
                    label = f"{'photo' if init == 'content' else 'noise'}, {iteration} it."
                    row = [Image.open(picture_path(style_id, init, iteration, n)) for n in PHOTOS]
                    pictures.append((label, row))
            pictures.append(("bundled net", images))
    head = (
        f"Gatys (L-BFGS, one scale, {SIZE} px, loss network fp32) from the photo and from "
        f"white noise, judged by `nst.judge` every {EVERY} iterations, mean over "
        f"{len(PHOTOS)} held-out photos ({', '.join(PHOTOS)}); the bundled nets on the same "
        f"photos. Gatys-{ITERATIONS} took {statistics.median(seconds or [0]):.0f} s per photo "
        f"(median; judging every {EVERY} iterations included) on: "
        f"{'; '.join(sorted(machines))}.\n\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(head + "\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(kept, indent=2) + "\n")
    if pictures:
        grid(pictures, out.with_suffix(".jpg"))
    print(head + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--only", default=",".join(STYLES), help="comma-separated style ids")
    parser.add_argument("--inits", default=",".join(INITS), help="content, noise or both")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    require_vgg16()
    if args.command == "report":
        report(args.out)
        return
    net = judge_network(str(VGG16), "cpu")
    photos = load_photos()
    for style_id in args.only.split(","):
        judge = Judge(net, PAINTINGS / f"{style_id}.jpg", SIZE)
        for init in args.inits.split(","):
            run_one(style_id, init, judge, photos)


if __name__ == "__main__":
    main()
