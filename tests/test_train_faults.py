"""Training under real faults: SIGKILL mid-run then --resume, and 2-process DDP with gloo.

These start real ``python -m train`` / ``torchrun`` processes, kept tiny (32 px crops,
width 8, a random VGG cut 8x narrower).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from csvlog import read_csv
from safetensors.torch import load_file
from test_train import TINY, make_photos, make_style

from train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["OMP_NUM_THREADS"] = "1"  # two processes on two cores: one thread each
    return env


def _args(tmp: Path, out: Path, *extra: str) -> list[str]:
    data = tmp / "photos"
    if not data.exists():
        make_photos(data)
        make_style(tmp / "stripes.png")
    args = ["--style", str(tmp / "stripes.png"), "--data", str(data), "--out", str(out)]
    return args + [*TINY, "--export", "no", *extra]


def test_sigkill_then_resume_loses_at_most_one_checkpoint_interval(tmp_path):
    out = tmp_path / "run"
    every = 3
    cmd = [sys.executable, "-m", "train", *_args(tmp_path, out, "--iterations", "100000")]
    cmd += ["--checkpoint-every", str(every), "--preview-every", "1000"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            found = ckpt.latest_checkpoint(out)
            if found is not None and found.step >= 2 * every:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no checkpoint after 240 s; stderr: {proc.stderr.read()[-2000:]}")
        time.sleep(0.3)  # land somewhere inside the next interval
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    logged = int(read_csv(out / "metrics.csv")[-1]["step"])  # the last step done before death
    resumed_from = ckpt.latest_checkpoint(out)
    assert resumed_from is not None
    assert logged - resumed_from.step <= every  # lost at most one checkpoint interval
    stop = resumed_from.step + 2
    done = subprocess.run(
        [sys.executable, "-m", "train", "--out", str(out), "--resume", "--iterations", str(stop)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"steps {resumed_from.step}..{stop}" in done.stderr
    steps = [int(r["step"]) for r in read_csv(out / "metrics.csv")]
    assert steps == list(range(1, stop + 1))  # the rows of the lost steps were replaced
    assert ckpt.latest_checkpoint(out).step == stop
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_torchrun_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "train", *_args(tmp_path, out, "--iterations", "3", "--save-rank-weights"),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "batch 2 x 2" in done.stderr  # both processes trained, each on its own batch

    rank0 = load_file(str(out / "rank0" / "model.safetensors"))
    rank1 = load_file(str(out / "rank1" / "model.safetensors"))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = load_file(str(ckpt.checkpoint_dir(out, 3) / "model.safetensors"))
    assert all(torch.equal(rank0[k], saved[k]) for k in rank0)
    # they trained: step 2's checkpoint differs from the final weights
    earlier = load_file(str(ckpt.checkpoint_dir(out, 2) / "model.safetensors"))
    assert not all(torch.equal(earlier[k], saved[k]) for k in saved)
    assert [int(r["step"]) for r in read_csv(out / "metrics.csv")] == [1, 2, 3]
