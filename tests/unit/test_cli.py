"""`python -m simulator --help` lists every command, and each command has its own --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simulator.cli import COMMANDS


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "simulator", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_help(name: str) -> None:
    out = subprocess.run([sys.executable, "-m", "simulator", name, "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout and "--help" in out.stdout
