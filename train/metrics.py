"""The run's CSV logs: one row per training step, one per validation preview."""

from __future__ import annotations

import csv
from pathlib import Path

from nst.files import atomic_path

METRICS_NAME = "metrics.csv"
VAL_METRICS_NAME = "val_metrics.csv"
METRIC_FIELDS = ["step", "epoch", "total", "content", "style", "tv", "images_per_s", "seconds"]
VAL_FIELDS = ["step", "total", "content", "style", "tv"]


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


class RunLogs:
    """Both logs of a run (rank 0 only)."""

    def __init__(self, run_dir: Path, start: int, resume: bool):
        self.steps = CsvLog(run_dir / METRICS_NAME, METRIC_FIELDS, start if resume else None)
        # A resume from step 0 (killed before its first checkpoint) previews step 0 again.
        val_keep = start if resume and start > 0 else None
        self.validation = CsvLog(run_dir / VAL_METRICS_NAME, VAL_FIELDS, val_keep)

    def step(
        self, step: int, epoch: float, losses: list[float], images_per_s: float, seconds: float
    ) -> None:
        """``losses``: total, content, style, tv."""
        self.steps.write(
            {
                "step": step,
                "epoch": f"{epoch:.4f}",
                **{k: f"{v:.6g}" for k, v in zip(METRIC_FIELDS[2:6], losses, strict=True)},
                "images_per_s": f"{images_per_s:.3f}",
                "seconds": f"{seconds:.2f}",
            }
        )

    def validated(self, step: int, losses: dict[str, float]) -> None:
        self.validation.write({"step": step, **{k: f"{losses[k]:.6g}" for k in VAL_FIELDS[1:]}})

    def close(self) -> None:
        self.steps.close()
        self.validation.close()
