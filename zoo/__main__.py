"""``python -m zoo list | info NAME | download NAME... | download --all | verify |
export-onnx NAME -o FILE | cards | add EXPORT``.

Errors meant for a person (:class:`NSTError`) print as one message and exit 1 (2 for a
wrong command line);
``verify`` exits 1 when a style on disk fails its sha256 or lacks its preview.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm  # a plain bar: shown in CI logs too, not only on a terminal

import zoo
from nst import hub
from nst.cli import run_command
from nst.errors import NSTError, UsageError
from zoo.catalogue import StyleEntry, catalogue_path


def _where(entry: StyleEntry) -> str:
    """'bundled', 'cached' or 'not downloaded': what a load would cost now."""
    if entry.is_bundled:
        return "bundled"
    assert entry.repo_id is not None and entry.revision is not None
    cached = hub.cached_file(entry.repo_id, entry.revision, entry.filename)
    return "cached" if cached is not None else "not downloaded"


def cmd_list(args: argparse.Namespace) -> int:
    styles = zoo.list_styles(args.catalogue)
    if not styles:
        print(f"No styles in {catalogue_path(args.catalogue)}.")
        return 0
    width = max(len(s.id) for s in styles)
    for s in styles:
        print(f"{s.id:<{width}}  {s.title} ({s.artist}, {s.year})  [{_where(s)}]")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    s = zoo.get_style(args.name, args.catalogue)
    lines = [
        f"id:        {s.id}",
        f"title:     {s.title}",
        f"painting:  {s.painting}, {s.artist} ({s.year})",
        f"license:   {s.license}",
        f"preview:   {s.preview_path}",
        f"weights:   {s.source}",
        f"sha256:    {s.sha256}",
        f"status:    {_where(s)}",
        "training:",
        *(f"  {k}: {v}" for k, v in sorted(s.training.items())),
    ]
    print("\n".join(lines))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        raise UsageError("Name the styles to download, or pass --all (not both).")
    names = [s.id for s in zoo.list_styles(args.catalogue)] if args.all else args.names
    failed = 0
    for name in names:
        try:
            path = zoo.download(
                name, catalogue=args.catalogue, progress=not args.quiet, tqdm_class=tqdm
            )
        except NSTError as exc:
            # Keep going: one unreachable style should not stop the others.
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {path}")
    if failed:
        print(f"{failed} of {len(names)} downloads failed.", file=sys.stderr)
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    results = zoo.verify(args.catalogue)
    for r in results:
        print(f"{'OK ' if r.ok else 'BAD'}  {r.id}: {r.status}")
    bad = sum(not r.ok for r in results)
    print(f"{len(results) - bad} of {len(results)} styles verified.")
    return 1 if bad else 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from nst.johnson.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx

    if not args.output.lower().endswith(".onnx"):
        raise UsageError(f"-o must name an .onnx file, not '{args.output}'.")
    model = zoo.load(args.name, catalogue=args.catalogue, progress=not args.quiet)
    path = export_onnx(model, args.output)
    print(
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): input '{INPUT_NAME}' and "
        f"output '{OUTPUT_NAME}', float32 RGB in [0, 1], (batch, 3, height, width), any size"
    )
    return 0


def cmd_cards(args: argparse.Namespace) -> int:
    from nst.johnson.card import write_card

    folders = {e.bundled_path for e in zoo.list_styles(args.catalogue) if e.is_bundled}
    for folder in sorted(folders):
        print(write_card(folder, evaluation=zoo.card_evaluation(folder, args.catalogue)))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from zoo.bundle import bundle_export, read_info

    name = args.name or _default_name(Path(args.export))
    evaluation = json.loads(Path(args.evaluation).read_text()) if args.evaluation else None
    named = {"dataset": args.dataset, "init_from": args.warm_start}
    training = {k: v for k, v in named.items() if v} or None
    listed = bundle_export(
        args.export,
        name,
        styles=args.styles,
        info=read_info(args.info),
        evaluation=evaluation,
        training=training,
        license=args.license,
        catalogue=args.catalogue,
    )
    print(f"bundled '{args.export}' as models/{name}; listed {', '.join(listed)}")
    return 0


def _default_name(export: Path) -> str:
    """A one-style export's style id; a multi-style one must be named."""
    config = json.loads((export / "config.json").read_text()) if export.is_dir() else {}
    if config.get("styles"):
        raise UsageError("A multi-style net needs --name: its folder under models/.")
    return str((config.get("style") or {}).get("id") or export.name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoo", description="Style models: catalogue, download, verify."
    )
    parser.add_argument(
        "--catalogue",
        help="catalogue JSON to use (default: NST_ZOO_CATALOGUE or zoo/catalogue.json)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the styles").set_defaults(run=cmd_list)
    info = sub.add_parser("info", help="show one style's details")
    info.add_argument("name")
    info.set_defaults(run=cmd_info)
    download = sub.add_parser("download", help="download styles into the Hub cache")
    download.add_argument("names", nargs="*", metavar="NAME", help="style ids or Hub repo ids")
    download.add_argument("--all", action="store_true", help="every style in the catalogue")
    download.add_argument("--quiet", action="store_true", help="no progress bars")
    download.set_defaults(run=cmd_download)
    verify = sub.add_parser("verify", help="check styles on disk against their sha256")
    verify.set_defaults(run=cmd_verify)
    export = sub.add_parser(
        "export-onnx", help="write a style as an ONNX model (onnxruntime, OpenVINO, ...)"
    )
    export.add_argument("name", metavar="NAME", help="style id, Hub repo id or model folder")
    export.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    export.add_argument("--quiet", action="store_true", help="no download progress bar")
    export.set_defaults(run=cmd_export_onnx)
    cards = sub.add_parser(
        "cards",
        help="rewrite the bundled styles' model cards (README.md) from their config.json and "
        "the catalogue's evaluation; the weights are not touched",
    )
    cards.set_defaults(run=cmd_cards)
    add = sub.add_parser(
        "add",
        help="bundle a trained export (python -m train's RUN/export) under models/ and list "
        "its styles in the catalogue",
    )
    add.add_argument("export", help="the export folder")
    add.add_argument("--name", help="folder under models/ (default: a one-style net's id)")
    add.add_argument("--styles", nargs="+", metavar="ID", help="list these only (default: all)")
    add.add_argument(
        "--info",
        help="JSON: style id -> {title, painting, artist, year, license} for the catalogue "
        "and the model card",
    )
    add.add_argument("--license", help="the paintings' licence where --info gives none")
    add.add_argument("--evaluation", help="JSON: style id -> its judged record (model card)")
    add.add_argument("--dataset", help="the training photos' name, for the model card")
    add.add_argument(
        "--warm-start",
        help="what the model card names as the net training started from (default: the "
        "run's --init-from as given)",
    )
    add.set_defaults(run=cmd_add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
