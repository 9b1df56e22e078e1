"""``python -m train``: train a style network (``torchrun --nproc_per_node N -m train`` for DDP)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from nst.cli import run_command
from nst.errors import UsageError
from train.checkpoint import latest_checkpoint
from train.config import RESUMABLE_OVERRIDES, TrainConfig, build_parser, explicit_settings
from train.loop import RUN_CONFIG_NAME, silence_known_warnings, train


def resolve_config(argv: Sequence[str] | None = None) -> tuple[TrainConfig, bool]:
    """The run's config from the command line, or from RUN_DIR when resuming."""
    args = build_parser().parse_args(argv)
    given = explicit_settings(args)
    if not args.out:
        raise UsageError("--out RUN_DIR is required.")
    run_dir = Path(args.out)
    saved = run_dir / RUN_CONFIG_NAME
    if args.resume:
        if not saved.is_file():
            raise UsageError(
                f"Nothing to resume in '{run_dir}' (no {RUN_CONFIG_NAME}). Start a new run "
                "without --resume."
            )
        config = TrainConfig.from_dict(json.loads(saved.read_text()))
        changed = sorted(
            k for k, v in given.items() if k not in RESUMABLE_OVERRIDES and getattr(config, k) != v
        )
        if changed:
            allowed = ", ".join(sorted(RESUMABLE_OVERRIDES))
            raise UsageError(
                f"--resume continues the run in '{run_dir}' with its own settings; these "
                f"differ from it: {', '.join(changed)}. Only {allowed} "
                "may change on resume. Drop them, or start a new run in another --out."
            )
        for key, value in given.items():
            setattr(config, key, value)
        return config.finish(), True
    if latest_checkpoint(run_dir) is not None or saved.is_file():
        raise UsageError(
            f"'{run_dir}' already holds a training run. Continue it with --resume, or choose "
            "another --out (nothing was changed)."
        )
    return TrainConfig(**given).finish(), False


def main(argv: Sequence[str] | None = None) -> int:
    silence_known_warnings()

    def run() -> int:
        config, resume = resolve_config(argv)
        export = train(config, resume=resume)
        if export is not None:
            print(f"exported to {export}")
        return 0

    return run_command(run, "interrupted: resume with --resume (from the last checkpoint)")


if __name__ == "__main__":
    sys.exit(main())
