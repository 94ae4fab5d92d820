"""How long ``sentinel --help`` takes, and which heavy modules it loads (none may).

Runs the installed console script (or ``python -m simulator`` when the script is not on PATH) a few times and prints
the median wall time of ``--help`` and of each command's ``--help``; then the modules of ``-X importtime`` that take
longest, cumulatively. The target is under a second for ``sentinel --help`` (issue 11); before the lazy imports it
was 2.7-5 s, because matplotlib, boto3, moto and awscrt loaded for the help text.

    .venv/bin/python benchmarks/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("generate", "provision", "deprovision", "publish", "stream", "backtest", "feedback", "demo")
HEAVY = ("boto3", "botocore", "matplotlib", "moto", "awscrt", "awsiot", "numpy", "aws_cdk", "jsii")


def cli() -> list[str]:
    script = Path(sys.executable).with_name("sentinel")
    found = str(script) if script.exists() else shutil.which("sentinel")
    return [found] if found else [sys.executable, "-m", "simulator"]


def median_seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def slowest_imports(top: int = 8) -> tuple[list[tuple[int, str]], list[str]]:
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "simulator", "--help"], capture_output=True, text=True, check=True
    )
    rows: list[tuple[int, str]] = []
    for line in res.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    heavy = sorted({name.strip() for _, name in rows if name.strip().split(".")[0] in HEAVY})
    return sorted(rows, reverse=True)[:top], heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median reported)")
    runs = parser.parse_args().runs
    base = cli()
    os.environ.setdefault("COLUMNS", "100")
    print(f"command: {' '.join(base)}")
    total = median_seconds([*base, "--help"], runs)
    print(f"sentinel --help: {total:.2f} s (median of {runs}; target < 1 s)")
    print(f"sentinel --version: {median_seconds([*base, '--version'], runs):.2f} s")
    for name in COMMANDS:
        print(f"sentinel {name} --help: {median_seconds([*base, name, '--help'], runs):.2f} s")
    top, heavy = slowest_imports()
    print("slowest imports of --help (cumulative, -X importtime):")
    for micros, name in top:
        print(f"  {micros / 1000:7.1f} ms  {name.strip()}")
    print(f"heavy modules loaded by --help: {', '.join(heavy) or 'none'}")
    if total >= 1.0 or heavy:
        sys.exit(1)


if __name__ == "__main__":
    main()
