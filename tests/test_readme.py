"""The README's two commands exist as Makefile targets, and CI runs the README's test command."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- readme-commands"


def readme_commands() -> list[str]:
    """The commands in the fenced block right after the README's marker: the demo first, the tests second."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(MARKER)
    match = re.search(r"```[a-z]*\n(.*?)```", text[start:], flags=re.DOTALL)
    assert match, "no fenced block after the readme-commands marker"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def ci_lines() -> list[list[str]]:
    """Words of each line of .ci/run, comments dropped."""
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    return [line.split("#", 1)[0].split() for line in text.splitlines()]


def contains(words: list[str], command: list[str]) -> bool:
    """True if ``command`` appears in ``words`` as consecutive words (``if ! make test ...`` counts)."""
    return any(words[i : i + len(command)] == command for i in range(len(words) - len(command) + 1))


def test_readme_names_two_make_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    for command in commands:
        assert shlex.split(command)[0] == "make", command


@pytest.mark.parametrize("index", [0, 1], ids=["demo", "test"])
def test_readme_command_is_a_make_target(index: int) -> None:
    make = shutil.which("make")
    assert make, "make is needed for the README's commands"
    args = shlex.split(readme_commands()[index])[1:]
    result = subprocess.run([make, "-n", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "pytest" in result.stdout if index == 1 else "sample-data" in result.stdout


def test_ci_runs_the_readme_test_command() -> None:
    ci = ROOT / ".ci" / "run"
    assert ci.stat().st_mode & 0o111, ".ci/run must be executable"
    text = ci.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    test_command = readme_commands()[1].split()
    assert any(contains(words, test_command) for words in ci_lines()), f".ci/run does not run {test_command}"
