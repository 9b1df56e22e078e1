"""A multi-style net's speed against a one-style net of the same width: a 1024 px photo,
cold (the first call: the engine's export and compilation included) and warm.

    .venv/bin/python benchmarks/bench_multistyle.py [--styles 11] [--width 32] [--size 1024]
        [--rounds 5] [--engine auto]

The peer is the dedicated net of the bundled zoo's architecture (a random one: the same
compute as a trained one). The multi-style net is exported once; its engine compiles that
graph per style with the style frozen in. Columns: cold, each net's first call in a fresh
engine cache (export and compile included); switch, the multi-style net's first call of
another style (a compile from the exported graph); warm, the min and median of the rounds,
which alternate between the two nets (and between two styles of the multi-style net) so
that drift in the machine's speed hits both alike. Prints the ratio and the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from nst.johnson import TransformerConfig, TransformerNet, engines, stylize_tensor  # noqa: E402


def net(width: int, styles: int) -> TransformerNet:
    torch.manual_seed(0)
    entries = [{"id": f"style_{i}"} for i in range(styles)] if styles > 1 else []
    return TransformerNet(TransformerConfig(width=width, styles=entries)).eval()


def timed(model: TransformerNet, photo: torch.Tensor, engine: str, style: int | None) -> float:
    start = time.perf_counter()
    stylize_tensor(model, photo, engine=engine, style=style)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", type=int, default=11)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ["NST_CACHE_DIR"] = tempfile.mkdtemp(prefix="nst-bench-")  # a cold cache
    engines.clear_cache()
    photo = torch.rand(1, 3, args.size * 3 // 4, args.size)
    one, multi = net(args.width, 1), net(args.width, args.styles)
    cold_one = timed(one, photo, args.engine, None)
    cold_multi = timed(multi, photo, args.engine, 0)
    switch = timed(multi, photo, args.engine, 1 % args.styles)
    warm: dict[str, list[float]] = {"one": [], "multi": []}
    for i in range(args.rounds):
        warm["one"].append(timed(one, photo, args.engine, None))
        warm["multi"].append(timed(multi, photo, args.engine, i % min(2, args.styles)))
    print(f"{args.size} px ({photo.shape[-1]}x{photo.shape[-2]}), width {args.width}, "
          f"engine {args.engine}")  # fmt: skip
    print(f"{'net':<26} {'cold s':>8} {'switch s':>9} {'warm min s':>11} {'warm median s':>14}")
    for label, cold, turn, key in (("one style (the peer)", cold_one, "-", "one"),
                                   (f"{args.styles} styles", cold_multi, f"{switch:.2f}",
                                    "multi")):  # fmt: skip
        times = warm[key]
        print(f"{label:<26} {cold:>8.2f} {turn:>9} {min(times):>11.3f} "
              f"{statistics.median(times):>14.3f}")  # fmt: skip
    ratio = statistics.median(warm["multi"]) / statistics.median(warm["one"])
    print(f"multi-style / one-style, warm median: {ratio:.3f}")
    print(f"machine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
