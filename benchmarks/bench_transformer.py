"""Speed and memory of Johnson-net inference; prints the machine it ran on.

    .venv/bin/python benchmarks/bench_transformer.py            # speed at 512 and 1024
    .venv/bin/python benchmarks/bench_transformer.py --memory   # + 3840x2160 peak RSS, tiling
    .venv/bin/python benchmarks/bench_transformer.py --no-speed --tiling  # tiled vs untiled
    .venv/bin/python benchmarks/bench_transformer.py --no-speed --engines --threads 2

Speed: seconds (best of --repeats), achieved GFLOP/s (the net's multiply-adds x 2 over the
time) and the fraction of this machine's measured large-matmul peak, for the reference
``TransformerNet.forward`` in fp32 and for ``stylize``'s path in each precision, with the
PSNR of each against the fp32 reference output of the same (random) weights.
Memory: peak resident set of a fresh process that stylises a 3840x2160 photo with
tile="auto". Tiling: PSNR and largest difference of tiled against untiled output (they
should agree to float rounding: the statistics are exact), and the time each takes, at a
size where the untiled pass fits, for a random width-32 net and the first zoo model found.
Engines: our PyTorch path, OpenVINO and onnxruntime on the straightforward ONNX export of
a random net of each --widths (the peers), and the same two engines on the rewritten graph
that ``stylize`` runs (rows "nst ..."), at each --sizes, run in turn within each of --rounds rounds
(the order rotating, so drift in a busy machine's load reaches all alike), in fp32 and,
on CPUs with bf16 arithmetic, bf16: min and median seconds, each one's ratio to OpenVINO
fp32, to OpenVINO at its own default precision for this CPU, and to onnxruntime, its
PSNR against the fp32 PyTorch output, and which row engine="auto" picks. The numbers
behind ``engines.AUTO_ORDER`` and ``nst.precision.inference_precision``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import CONTENT, machine  # noqa: E402
from nst.hardware import matmul_gflops  # noqa: E402
from nst.johnson import (  # noqa: E402
    TransformerConfig,
    TransformerNet,
    load_transformer,
    stylize,
    stylize_tensor,
)
from nst.johnson.stylize import _prepare, _run_net  # noqa: E402

PHOTO = CONTENT / "golden_gate.jpg"
ZOO = ROOT / "zoo" / "models"


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN picks and caches its kernels on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def net_gflop(net: TransformerNet, h: int, w: int) -> float:
    """Multiply-adds x 2 of every convolution, counted from the layers' shapes."""
    total, scale = 0.0, {"h": h, "w": w}
    hooks = []

    def count(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
        total += 2 * k * output.numel()

    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(count))
    with torch.inference_mode():
        net(torch.zeros(1, 3, scale["h"], scale["w"]))
    for hook in hooks:
        hook.remove()
    return total / 1e9


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().clamp(min=1e-20)
    return float(10 * torch.log10(1 / mse))


def speed(sizes: list[int], precisions: list[str], repeats: int) -> None:
    peak32 = matmul_gflops(torch.float32)
    peak16 = matmul_gflops(torch.bfloat16, 512, repeats=3)
    print(f"matmul peak: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s")
    torch.manual_seed(0)
    net = TransformerNet().eval()
    print(f"{'size':>6} {'mode':<22} {'seconds':>8} {'GFLOP/s':>8} {'of peak':>8} {'PSNR dB':>8}")
    for size in sizes:
        x = torch.rand(1, 3, size, size)
        gflop = net_gflop(net, size, size)
        with torch.inference_mode():
            reference = net(x)
            rows = [("fp32 reference", lambda x=x: net(x), peak32)]
            for precision in precisions:
                fast = _prepare(net, torch.device("cpu"), precision)
                peak = peak16 if precision == "bf16" else peak32
                rows.append(
                    (f"{precision} channels-last", lambda f=fast, x=x: _run_net(f, x), peak)
                )
            for name, fn, peak in rows:
                seconds = best_time(fn, repeats if "bf16" not in name else 1)
                out = fn()
                rate = gflop / seconds
                print(
                    f"{size:>6} {name:<22} {seconds:8.3f} {rate:8.1f} {rate / peak:8.0%} "
                    f"{psnr(out, reference):8.1f}",
                    flush=True,
                )
        print(f"       ({gflop:.1f} GFLOP per image)")


def _child_4k(tile: str) -> None:
    """Runs in a fresh process: stylise a 3840x2160 photo, report peak RSS."""
    from nst.images import load_image

    torch.manual_seed(0)
    net = TransformerNet().eval()
    photo = load_image(PHOTO).resize((3840, 2160)) if PHOTO.exists() else None
    image = photo if photo is not None else torch.rand(1, 3, 2160, 3840)
    start = time.perf_counter()
    result = stylize(net, image, device="cpu", tile="auto" if tile == "auto" else int(tile))
    seconds = time.perf_counter() - start
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_rss_gb": rss_gb, "size": result.size}))


def memory() -> None:
    for tile in ("auto",):
        out = subprocess.run(
            [sys.executable, __file__, "--child-4k", tile],
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"3840x2160, tile={tile}: peak RSS {data['peak_rss_gb']:.2f} GB "
            f"(whole process), {data['seconds']:.1f} s"
        )


def tiling(repeats: int) -> None:
    """Tiled vs untiled output and time, fp32, at the photo's 1600 px long side."""
    from nst.images import load_image, to_tensor

    torch.manual_seed(0)
    nets = [("random width-32 net", TransformerNet().eval())]
    trained = sorted(ZOO.glob("*/model.safetensors"))
    if trained:
        nets.append((f"zoo model '{trained[0].parent.name}'", load_transformer(trained[0].parent)))
    else:
        print(f"(no trained model under {ZOO}: random weights only)")
    if PHOTO.exists():
        x = to_tensor(load_image(PHOTO, long_side=1600))
    else:
        x = torch.rand(1, 3, 744, 1600)
    size = f"{x.shape[-1]}x{x.shape[-2]}"
    for name, net in nets:

        def run(tile: int | None, net: TransformerNet = net) -> torch.Tensor:
            return stylize_tensor(net, x, device="cpu", tile=tile, precision="fp32")

        untiled = run(None)
        base = best_time(lambda: run(None), repeats)
        print(f"{name}, {size}: untiled {base:.2f} s")
        for side in (512, 1024):
            tiled = run(side)
            seconds = best_time(lambda side=side: run(side), repeats)
            print(
                f"  tiled, {side} px windows: PSNR {psnr(tiled, untiled):.1f} dB, "
                f"max |diff| {(tiled - untiled).abs().max():.1e}, {seconds:.2f} s "
                f"({seconds / base:.2f}x untiled)",
                flush=True,
            )


#: (label, engine, precision, graph): each row of the engines table. The peers run the
#: straightforward export of the net (its layers as they are: what torch.onnx.export of
#: the module gives a user); the "nst" rows run the rewritten graph that stylize's engines
#: run (nst.johnson.inference_graph). bf16 rows run only on CPUs with bf16 arithmetic
#: (emulated elsewhere: slower than fp32, not a contender).
ENGINE_ROWS = (
    ("torch", "torch", "fp32", None),
    ("torch bf16", "torch", "bf16", None),
    ("openvino", "openvino", "fp32", "plain"),
    ("openvino bf16", "openvino", "bf16", "plain"),
    ("onnxruntime", "onnxruntime", "fp32", "plain"),
    ("nst openvino", "openvino", "fp32", "rewritten"),
    ("nst openvino bf16", "openvino", "bf16", "rewritten"),
    ("nst onnxruntime", "onnxruntime", "fp32", "rewritten"),
)


def _engine_runners(net: TransformerNet) -> tuple[dict, dict[str, str], str]:
    """{label: run(x) -> y} for each row that can run here, {label: why skipped}, and the
    label of what ``stylize``'s engine="auto", precision="auto" picks."""
    from nst.hardware import native_bf16_cpu
    from nst.johnson import engines, onnx_export
    from nst.johnson.stylize import plan, prepare_runner

    runners, skipped, graphs = {}, {}, {}
    needs_export = any(engines.missing(e) is None for _, e, _, _ in ENGINE_ROWS if e != "torch")
    for graph in ("plain", "rewritten") if needs_export else ():
        start = time.perf_counter()
        graphs[graph] = onnx_export.export_bytes(net, rewrite=graph == "rewritten")
        print(
            f"  ONNX export, {graph}: {time.perf_counter() - start:.1f} s, "
            f"{len(graphs[graph]) / 2**20:.1f} MiB"
        )
    for label, engine, precision, graph in ENGINE_ROWS:
        if precision == "bf16" and not native_bf16_cpu():
            skipped[label] = "no bf16 arithmetic on this CPU"
        elif engines.missing(engine) is not None:
            skipped[label] = engines.missing(engine) or ""
        elif engine == "torch":
            p = plan(net, 64, 64, device="cpu", precision=precision, engine="torch")
            runners[label] = (lambda r: lambda x: r(x, None))(prepare_runner(net, p))
        else:
            start = time.perf_counter()
            runners[label] = engines._CLASSES[engine](graphs[graph], precision).run
            print(f"  {label} compile: {time.perf_counter() - start:.2f} s")
    auto = plan(net, 1024, 1024, device="cpu", engine="auto")
    picked = next(
        label
        for label, e, prec, graph in ENGINE_ROWS
        if (e, prec) == (auto.engine, auto.precision) and graph in (None, "rewritten")
    )
    return runners, skipped, picked


def _engine_versions() -> str:
    found = []
    for module in ("openvino", "onnxruntime"):
        try:
            found.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            found.append(f"{module} not installed")
    return ", ".join(found)


def _openvino_default() -> str:
    """The precision OpenVINO runs when not told (bf16 on CPUs with bf16 arithmetic)."""
    try:
        import openvino as ov
    except ImportError:
        return "-"
    hint = str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    return "bf16" if "bf" in hint.lower() else "fp32"


def engines_side_by_side(sizes: list[int], widths: list[int], rounds: int) -> None:
    """Each engine and precision on one exported net, alternating over rounds."""
    print(f"engines: {_engine_versions()}; {rounds} rounds, {torch.get_num_threads()} threads")
    default = _openvino_default()
    print(f"OpenVINO's own default precision on this CPU: {default}")
    default_label = "openvino bf16" if default == "bf16" else "openvino"
    for width in widths:
        torch.manual_seed(0)
        net = TransformerNet(TransformerConfig(width=width)).eval()
        print(f"width {width}:")
        runners, skipped, picked = _engine_runners(net)
        for name, why in skipped.items():
            print(f"  {name}: skipped ({why})")
        print(f"  engine='auto' runs: {picked}")
        names = list(runners)
        for size in sizes:
            x = torch.rand(1, 3, size, size)
            reference = runners["torch"](x)
            quality = {name: psnr(run(x), reference) for name, run in runners.items()}  # + warm-up
            times: dict[str, list[float]] = {name: [] for name in names}
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    start = time.perf_counter()
                    runners[name](x)
                    times[name].append(time.perf_counter() - start)
            _print_engine_rows(size, times, quality, picked, default_label)


def _print_engine_rows(
    size: int, times: dict[str, list[float]], quality: dict, picked: str, default_label: str
) -> None:
    print(
        f"  {size:>5} px {'engine':<18} {'min s':>7} {'median s':>9} {'/openvino':>10} "
        f"{'/ov default':>12} {'/onnxruntime':>13} {'PSNR dB':>8}"
    )
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():

        def ratio(other: str, name: str = name) -> str:
            return f"{medians[name] / medians[other]:.2f}x" if other in medians else "-"

        mark = "  <- auto" if name == picked else ""
        print(
            f"  {'':>8} {name:<18} {min(t):7.3f} {medians[name]:9.3f} {ratio('openvino'):>10} "
            f"{ratio(default_label):>12} {ratio('onnxruntime'):>13} {quality[name]:8.1f}{mark}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory", action="store_true", help="also the 4K memory check")
    parser.add_argument("--tiling", action="store_true", help="also tiled vs untiled")
    parser.add_argument("--engines", action="store_true", help="torch vs OpenVINO vs onnxruntime")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 16], help="for --engines")
    parser.add_argument("--rounds", type=int, default=5, help="for --engines")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--child-4k", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_4k:
        _child_4k(args.child_4k)
        return
    print(machine())
    if not args.no_speed:
        speed(args.sizes, args.precisions, args.repeats)
    if args.memory:
        memory()
    if args.tiling or args.memory:
        tiling(args.repeats)
    if args.engines:
        engines_side_by_side(args.sizes, args.widths, args.rounds)


if __name__ == "__main__":
    main()
