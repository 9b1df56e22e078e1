"""The ``nst`` command: its own subcommands, the delegated ones, and --version."""

from __future__ import annotations

import pytest

from nst.cli import main


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("nst ")


def test_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("stylize", "gatys", "zoo", "train", "app"):
        assert command in out


def test_zoo_and_train_are_run_by_their_own_modules(capsys) -> None:
    assert main(["zoo", "list"]) == 0
    assert "starry_night" in capsys.readouterr().out
    assert main(["train", "--out", "/nonexistent/run", "--resume"]) == 2
    assert "Nothing to resume" in capsys.readouterr().err
