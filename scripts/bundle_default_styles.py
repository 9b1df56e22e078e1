"""Ship trained default styles inside the repo: runs/<id>/export -> zoo/models/<id>/.

    .venv/bin/python scripts/bundle_default_styles.py [--runs runs] [ID ...]

Copies each export (fp16 model.safetensors, config.json, model card README.md, style.jpg,
samples/) into the zoo and registers it in zoo/catalogue.json as a bundled entry with its
sha256 and a preview of the painting, so the app works with no network.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import zoo  # noqa: E402


def trained_steps(run: Path) -> int:
    """The step the export was made from (a run may be stopped before its planned end)."""
    return int(json.loads((run / "export" / "config.json").read_text()).get("step", 0)) or max(
        int(p.name.split("_")[1]) for p in (run / "checkpoints").glob("step_*")
    )


def bundle(run: Path, note: str = "") -> str:
    export = run / "export"
    config = json.loads((export / "config.json").read_text())
    style = config.get("style", {})
    style_id = style.get("id") or run.name
    target = ROOT / "zoo" / "models" / style_id
    if target.exists():
        shutil.rmtree(target)
    # The samples are outputs on BSDS500 photos (research use only): not redistributed.
    shutil.copytree(export, target, ignore=shutil.ignore_patterns("samples"))
    card = (target / "README.md").read_text()
    head, found, rest = card.partition("## Samples")
    if found:
        after = rest.split("\n## ", 1)
        card = head + ("## " + after[1] if len(after) == 2 else "")
    if note:
        card = card.rstrip("\n") + f"\n\n## Note\n\n{note}\n"
    (target / "README.md").write_text(card)
    training = dict(config.get("training", {}))
    # All the steps behind the net, a warm start's included (export records them).
    training["trained_steps"] = int(training.get("total_steps") or trained_steps(run))
    if note:
        training["note"] = note
    run_config = json.loads((run / "run.json").read_text())
    zoo.add_style(
        {
            "id": style_id,
            "title": style.get("title", style_id),
            "painting": style.get("painting", ""),
            "artist": style.get("artist", ""),
            "year": str(style.get("year", "")),
            "license": run_config.get("license") or "public domain",
            "weights": {"bundled": f"models/{style_id}"},
            "training": training,
        },
        source_image=run_config["style"],
    )
    return style_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ids", nargs="*", help="run names (default: every run with an export)")
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument("--note", default="", help="a line for the model card and catalogue")
    args = parser.parse_args()
    runs = Path(args.runs)
    names = args.ids or sorted(p.parent.name for p in runs.glob("*/export/model.safetensors"))
    for name in names:
        print("bundled", bundle(runs / name, args.note))


if __name__ == "__main__":
    main()
