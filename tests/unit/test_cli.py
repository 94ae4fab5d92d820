"""The CLI's surface: every command registered with its own --help, --version, and a fast, light `--help`.

In-process with typer's CliRunner, except one subprocess test per way of starting the CLI (`python -m simulator`,
the `sentinel` console script): those are what an operator types, and only a fresh interpreter shows which modules
`--help` really imports.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import COMMANDS, app

# Written out, not derived from the app: a command that fails to register must fail these tests.
EXPECTED = {
    "generate": "--preset",
    "provision": "--certs-dir",
    "deprovision": "--certs-dir",
    "publish": "--max-in-flight",
    "stream": "--stream-name",
    "backtest": "--interval",
    "feedback": "--not-anomaly",
    "demo": "--hours",
    "detector": "activate",
    "console": "--port",
}
# What made `--help` take 2.7-5 s before the command modules imported them lazily.
HEAVY = ("boto3", "botocore", "matplotlib", "moto", "awscrt", "awsiot", "numpy", "aws_cdk", "jsii")
runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in EXPECTED:
        assert f" {name} " in result.output, f"{name} missing from --help"
    assert set(COMMANDS) == set(EXPECTED)


@pytest.mark.parametrize(("name", "option"), sorted(EXPECTED.items()))
def test_each_command_has_help_with_its_options(name: str, option: str) -> None:
    result = runner.invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and f"sentinel {name}" in result.output
    assert option in result.output


def test_version_is_the_package_metadata() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"sentinel {version('metric-sentinel')}"


def test_region_options_read_aws_region_before_aws_default_region() -> None:
    for name in ("provision", "stream", "feedback"):
        text = runner.invoke(app, [name, "--help"], terminal_width=200).output
        assert "AWS_REGION" in text and "AWS_DEFAULT_REGION" in text, name


def test_python_m_simulator_help_imports_no_heavy_module() -> None:
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "simulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    for name in EXPECTED:
        assert name in res.stdout
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "simulator.commands.demo" in imported  # the parse below does see our own modules
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert heavy == [], f"--help imported {heavy}"


def test_sentinel_console_script() -> None:
    script = Path(sys.executable).with_name("sentinel")
    assert script.exists(), "pip install -e . installs the `sentinel` console script ([project.scripts])"
    res = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"sentinel {version('metric-sentinel')}"
    res = subprocess.run([str(script), "backtest", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "--interval" in res.stdout, res.stderr
