"""``python -m train.publish RUN_DIR/export --repo USER/NAME``: upload a style, add it to the zoo.

The export folder goes up as one commit through the project's Hub path
(:func:`nst.hub.upload_folder`, the one ``TransformerNet.push_to_hub`` uses too), with the
card's usage lines naming the repo; the zoo catalogue then gets an entry pinned to that
commit, with the sha256 of ``model.safetensors``, so the style users download is exactly
the one published.

The token comes from ``HF_TOKEN`` or the login cache (``hf auth login``). It is never
printed or logged: messages from the Hub client are scrubbed of it before they are shown.
``--dry-run`` lists exactly what would be uploaded and needs no token.

A multi-style export gets one catalogue entry per style, each naming its row of the one
net. The export of ``python -m train --add-style`` publishes only its ``adapter/`` folder
(the new style's rows, pinned to the base net's sha256): ``--base ID`` names the catalogue
style of the base net it was trained on, whose pinned sha256 must be the adapter's pin.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nst.cli import run_command
from nst.errors import NSTError
from nst.hub import CONFIG_NAME, REPO_ID_PATTERN, WEIGHTS_NAME, upload_folder
from nst.johnson import TransformerNet
from nst.johnson.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, read_adapter
from nst.johnson.card import CARD_NAME, REPO_PLACEHOLDER
from train.export import ADAPTER_FOLDER


@dataclass
class PublishResult:
    repo_id: str
    files: list[str]
    revision: str | None = None  # the commit; None for a dry run
    commit_url: str | None = None
    entry: dict[str, Any] = field(default_factory=dict)  # the first of ``entries``
    entries: list[dict[str, Any]] = field(default_factory=list)  # one per style


def upload_files(export_dir: Path) -> list[str]:
    """The files an upload sends, relative to the export folder (temporary files left out)."""
    return sorted(
        p.relative_to(export_dir).as_posix()
        for p in export_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(export_dir).parts)
    )


def check_export(export_dir: Path) -> dict[str, Any]:
    """Refuse anything but a complete export; return its config.json."""
    if not export_dir.is_dir():
        raise NSTError(
            f"'{export_dir}' is not a folder. Publish the export of a run: RUN_DIR/export."
        )
    for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME):
        if not (export_dir / name).is_file():
            raise NSTError(
                f"'{export_dir}' lacks {name}: it is not a complete export. Run "
                "`python -m train.export RUN_DIR` first."
            )
    model = TransformerNet.from_pretrained(export_dir)  # as the zoo will load it
    return {
        "style": model.config.style,
        "styles": model.config.styles,
        "training": model.config.training,
    }


def check_adapter(folder: Path, base: str | None, catalogue: Any) -> dict[str, Any]:
    """An adapter's config, after checking that ``base`` (a catalogue style) is the net it
    was trained on."""
    import zoo

    config, _ = read_adapter(folder)
    if base is None:
        raise NSTError(
            f"'{folder}' is a style adapter: pass --base ID, the zoo style of the net it was "
            "trained on (its sha256 is checked against the adapter's pin)."
        )
    entry = zoo.get_style(base, catalogue)
    if entry.sha256 != config["base"].get("sha256"):
        raise NSTError(
            f"The adapter in '{folder}' was trained on another net than the zoo's '{base}' "
            f"(sha256 {str(config['base'].get('sha256'))[:12]}… against {entry.sha256[:12]}…)."
        )
    return config


def catalogue_entries(
    export_dir: Path, config: dict[str, Any], repo_id: str, revision: str
) -> list[dict[str, Any]]:
    """The zoo catalogue entries of a published export, pinned to ``revision``: one, or
    one per style of a multi-style net (each naming its row)."""
    if not config.get("styles"):
        return [catalogue_entry(export_dir, config, repo_id, revision)]
    entries = []
    for style in config["styles"]:
        entry = catalogue_entry(export_dir, {**config, "style": style}, repo_id, revision)
        entry["weights"]["style"] = style["id"]
        entries.append(entry)
    return entries


def catalogue_entry(
    export_dir: Path, config: dict[str, Any], repo_id: str, revision: str
) -> dict[str, Any]:
    """The zoo catalogue entry of a published export, pinned to ``revision``."""
    from huggingface_hub import ModelCard

    from nst.files import file_sha256

    style = config["style"]
    card = ModelCard.load(export_dir / CARD_NAME).data
    if not style.get("id"):
        raise NSTError(f"{export_dir / CONFIG_NAME} names no style id (style.id).")
    return {
        "id": style["id"],
        "title": style.get("title") or style["id"],
        "painting": style.get("painting") or style.get("title") or style["id"],
        "artist": style.get("artist") or "unknown",
        "year": style.get("year") or "unknown",
        "license": card.license or "unknown",
        "preview": f"previews/{style['id']}.jpg",
        "weights": {"repo_id": repo_id, "filename": WEIGHTS_NAME, "revision": revision},
        "sha256": file_sha256(export_dir / WEIGHTS_NAME),
        "training": config.get("training", {}),
    }


def publish(
    export_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    catalogue: str | os.PathLike | None = None,
    add_to_zoo: bool = True,
    token: str | None = None,
    base: str | None = None,
) -> PublishResult:
    """Upload ``export_dir`` to ``repo_id`` as one commit and add it to the zoo catalogue
    (an added style: only its adapter, see the module docstring)."""
    export_dir = Path(export_dir)
    if not REPO_ID_PATTERN.match(repo_id):
        raise NSTError(f"--repo '{repo_id}' is not a Hub repo id: write it USER/NAME.")
    if (export_dir / ADAPTER_FOLDER / ADAPTER_CONFIG).is_file():
        export_dir = export_dir / ADAPTER_FOLDER  # the base net is not uploaded again
    if (export_dir / ADAPTER_CONFIG).is_file():
        return _publish_adapter(export_dir, repo_id, base, private, dry_run, catalogue,
                                add_to_zoo, token)  # fmt: skip
    config = check_export(export_dir)
    files = upload_files(export_dir)
    if dry_run:
        return PublishResult(repo_id, files)

    with tempfile.TemporaryDirectory(prefix="nst-publish-") as tmp:
        staged = Path(tmp) / "export"
        shutil.copytree(export_dir, staged, ignore=shutil.ignore_patterns(".*"))
        card = staged / CARD_NAME  # the card's usage lines name the repo it lives in
        card.write_text(card.read_text(encoding="utf-8").replace(REPO_PLACEHOLDER, repo_id))
        info = upload_folder(
            repo_id,
            staged,
            commit_message=f"Upload style network '{config['style'].get('id')}'",
            private=private,
            token=token,
        )
    result = PublishResult(repo_id, files, info.oid, str(info.commit_url))
    result.entries = catalogue_entries(export_dir, config, repo_id, info.oid)
    result.entry = result.entries[0]
    if add_to_zoo:
        _add_to_zoo(export_dir, result.entries, config, catalogue)
    return result


def _add_to_zoo(
    folder: Path, entries: list[dict[str, Any]], config: dict[str, Any], catalogue: Any
) -> None:
    import zoo

    for entry, style in zip(entries, config.get("styles") or [config["style"]], strict=True):
        image = folder / str(style.get("image") or "style.jpg")
        zoo.add_style(entry, catalogue, source_image=image if image.is_file() else None)


def _publish_adapter(
    folder: Path,
    repo_id: str,
    base: str | None,
    private: bool,
    dry_run: bool,
    catalogue: Any,
    add_to_zoo: bool,
    token: str | None,
) -> PublishResult:
    """Upload an added style's adapter (a few thousand numbers) and add its entry."""
    from nst.files import file_sha256

    config = check_adapter(folder, base, catalogue)
    files = upload_files(folder)
    if dry_run:
        return PublishResult(repo_id, files)
    style = config["style"]
    info = upload_folder(
        repo_id, folder, commit_message=f"Upload style adapter '{style['id']}'",
        private=private, token=token,
    )  # fmt: skip
    entry = {
        "id": style["id"],
        "title": style.get("title") or style["id"],
        "painting": style.get("painting") or style.get("title") or style["id"],
        "artist": style.get("artist") or "unknown",
        "year": style.get("year") or "unknown",
        "license": "unknown",
        "preview": f"previews/{style['id']}.jpg",
        "weights": {
            "repo_id": repo_id,
            "filename": ADAPTER_WEIGHTS,
            "revision": info.oid,
            "style": style["id"],
            "base": base,
        },
        "sha256": file_sha256(folder / ADAPTER_WEIGHTS),
    }
    result = PublishResult(repo_id, files, info.oid, str(info.commit_url), entry, [entry])
    if add_to_zoo:
        import zoo

        image = folder.parent / str(style.get("image") or "style.jpg")
        zoo.add_style(entry, catalogue, source_image=image if image.is_file() else None)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.publish",
        description="Upload a training export to the Hugging Face Hub and add it to the zoo.",
    )
    parser.add_argument("export", help="the export folder (RUN_DIR/export)")
    parser.add_argument("--repo", required=True, help="Hub repo id, USER/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    parser.add_argument("--catalogue", help="zoo catalogue to update (default: zoo/catalogue.json)")
    parser.add_argument("--no-catalogue", action="store_true", help="do not touch the zoo")
    parser.add_argument(
        "--base", help="an added style's adapter: the zoo style of the net it was trained on"
    )
    args = parser.parse_args(argv)
    return run_command(lambda: _publish_and_report(args))


def _publish_and_report(args: argparse.Namespace) -> int:
    result = publish(
        args.export,
        args.repo,
        private=args.private,
        dry_run=args.dry_run,
        catalogue=args.catalogue,
        add_to_zoo=not args.no_catalogue,
        base=args.base,
    )
    if args.dry_run:
        print(f"dry run: would upload {len(result.files)} files to {args.repo}:")
        for name in result.files:
            size = (Path(args.export) / name).stat().st_size
            print(f"  {name}  ({size:,} bytes)")
        return 0
    print(f"published {args.repo} at commit {result.revision}")
    print(f"  {result.commit_url}")
    if not args.no_catalogue:
        ids = ", ".join(f"'{e['id']}'" for e in result.entries)
        print(f"added {ids} to the zoo catalogue, pinned to {result.revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
