"""``nst COMMAND`` (or ``python -m nst COMMAND``): one entry point, one module per command.

Each command module has ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Errors meant for a person (:class:`NSTError`) print as one
message and exit 1 (2 when the command line itself is wrong, as argparse's own errors);
nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from nst.errors import NSTError, UsageError

COMMANDS = {
    "gatys": "nst.cli.gatys",
    "stylize": "nst.cli.stylize",
}
#: Commands of the packages built on nst, run by their own ``main(argv)`` (imported only
#: when called, so nst itself depends on none of them).
DELEGATED = {
    "zoo": ("zoo.__main__", "the style zoo: list, info, download, verify, export-onnx"),
    "train": ("train.__main__", "train a new Johnson style (python -m train)"),
    "app": ("app", "start the web app (Gradio)"),
}


def version() -> str:
    """The installed package's version; the source tree's when it is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("nst")
    except PackageNotFoundError:
        return "0+source"


def comma_list(text: str) -> list[str]:
    """argparse type: "relu1_1, relu2_1" -> ["relu1_1", "relu2_1"] (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_floats(text: str) -> list[float]:
    """argparse type: "0.7,0.3" -> [0.7, 0.3]."""
    try:
        return [float(item) for item in comma_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst",
        description="Neural style transfer: Gatys et al. 2015 and Johnson et al. 2016.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    for name, (_module, help_text) in DELEGATED.items():
        # Listed in the help; their arguments are parsed by their own modules (see main).
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def run_command(command: Callable[[], int], interrupted: str = "interrupted") -> int:
    """Run a command line's work: an error meant for a person prints as one line and exits
    2 when the command line itself is wrong (:class:`UsageError`, as argparse does), 1 when
    the work failed (any other :class:`NSTError`); Ctrl-C exits 130.

    Shared by ``nst``, ``python -m zoo``, ``python -m train`` and its tools.
    """
    try:
        return int(command())
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NSTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """``nst COMMAND ...`` (also ``python -m nst``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        try:
            module = importlib.import_module(DELEGATED[argv[0]][0])
        except ModuleNotFoundError as exc:
            print(
                f"error: `nst {argv[0]}` needs {exc.name}: pip install 'nst[app]'",
                file=sys.stderr,
            )
            return 1
        return int(module.main(argv[1:]))
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.run(args))
