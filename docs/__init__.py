"""Studies behind the numbers in the README, each beside its report (docs/README.md).

Run one from the repository root as a module: ``python -m docs.<study>.study``.
"""
