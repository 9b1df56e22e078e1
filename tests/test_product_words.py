"""The product reads as one: no words about how its work was organised, no paths of the
machine it was built on.

- No tracked text file names a numbered work session or issue (dates and versions say
  when), nor calls the document the project started from "the seed" (the papers are cited by authors
  and title instead). A random seed stays a seed: only these phrases are refused.
- No "../shared" in what users read: the Markdown pages (README, docs, model cards), the JSON
  files (the catalogue), and the product code (``app.py``, ``nst/``, ``zoo/``, ``train/``,
  ``webapp/``), error messages included. Tests, benchmarks and the studies may default to
  that data folder, each kind in one place (tests/conftest.py, benchmarks/common.py,
  docs/common.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()

#: Process words: a numbered session or issue, and "the seed" for the starting document.
# Written with character classes, so this file passes the check it makes too (and so does
# a plain `git grep` for the same words).
PROCESS_WORDS = re.compile(
    r"sessio[n] [0-9]|issu[e] [0-9]"
    r"|the seed observed|the seed's|seed recipe|seed's experiments",
    re.IGNORECASE,
)
MACHINE_PATH = "../shared"
#: Where users read: these suffixes anywhere, and every file under these folders.
USER_FACING_SUFFIXES = (".md", ".json")
PRODUCT_FILES = ("app.py",)
PRODUCT_FOLDERS = ("nst/", "zoo/", "train/", "webapp/")


def tracked_text_files() -> dict[str, str]:
    """path -> text of every tracked file that is text (binary files are left out)."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    texts = {}
    for name in listing.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file() or path.resolve() == THIS:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def hits(texts: dict[str, str], found) -> list[str]:
    """``path:line: text`` for every line where ``found(line)`` is true."""
    return [
        f"{name}:{number}: {line.strip()[:120]}"
        for name, text in sorted(texts.items())
        for number, line in enumerate(text.splitlines(), 1)
        if found(line)
    ]


def user_facing(name: str) -> bool:
    return (
        name.endswith(USER_FACING_SUFFIXES)
        or name in PRODUCT_FILES
        or name.startswith(PRODUCT_FOLDERS)
    )


def test_no_process_words_in_tracked_files() -> None:
    found = hits(tracked_text_files(), lambda line: PROCESS_WORDS.search(line) is not None)
    assert not found, (
        "Say when with a date or a version, and cite the papers by authors and title:\n"
        + "\n".join(found)
    )


def test_no_machine_paths_where_users_read() -> None:
    texts = {name: text for name, text in tracked_text_files().items() if user_facing(name)}
    found = hits(texts, lambda line: MACHINE_PATH in line)
    assert not found, (
        f"{MACHINE_PATH} is this workspace's data folder, not the user's: name an environment "
        "variable or a Hub download instead:\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("measured in " + "Session" + " 13 on the Xeon", True),
        ("Issue" + " 12's target", True),
        ("as the seed observed", True),
        ("the seed's experiments, rerun", True),
        ("--seed 0: the random seed of the run", False),
        ("two seeds per batch size", False),
        ("an ort.InferenceSession for the export", False),
    ],
)
def test_the_pattern_refuses_process_words_only(line: str, refused: bool) -> None:
    assert (PROCESS_WORDS.search(line) is not None) is refused
