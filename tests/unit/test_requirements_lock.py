"""The hashed locks (requirements/*.lock) agree with the pins they were compiled from, with each other, and with
the tree installed in this venv: a pin edited without `make lock`, or a venv drifting from the lock, fails here."""

from __future__ import annotations

import itertools
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQ = Path(__file__).resolve().parents[2] / "requirements"
TIERS = ("deploy", "simulator", "dev")  # each tier's lock contains the one before


def pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, extras) of every `name[extras]==version` line, following `-r` includes."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-c "):
            continue
        if line.startswith("-r "):
            for name, (version, extras) in pins(path.parent / line[3:].strip()).items():
                old = out.get(name, (version, frozenset()))
                assert old[0] == version, f"{path.name} and an include pin {name} differently"
                out[name] = (version, old[1] | extras)
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: {line!r} is not an exact pin"
        name = canonicalize_name(req.name)
        old = out.get(name, (specs[0].version, frozenset()))
        assert old[0] == specs[0].version, f"{path.name} pins {name} twice, differently"
        out[name] = (specs[0].version, old[1] | frozenset(req.extras))
    return out


_ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


def lock(tier: str) -> dict[str, tuple[str, str | None, int]]:
    """name -> (version, marker, number of hashes) of a lock file."""
    entries: dict[str, tuple[str, str | None, int]] = {}
    current: str | None = None
    for line in (REQ / f"{tier}.lock").read_text().splitlines():
        m = _ENTRY.match(line)
        if m:
            current = canonicalize_name(m["name"])
            entries[current] = (m["version"], m["marker"], 0)
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            version, marker, hashes = entries[current]
            entries[current] = (version, marker, hashes + 1)
    return entries


@pytest.mark.parametrize("tier", TIERS)
def test_every_input_pin_is_locked_at_that_version(tier: str) -> None:
    locked = lock(tier)
    for name, (version, _extras) in pins(REQ / f"{tier}.in").items():
        assert name in locked, f"{name} is pinned in {tier}.in but not in {tier}.lock: run make lock"
        assert locked[name][0] == version, f"{name}: {tier}.in says {version}, {tier}.lock {locked[name][0]}"


@pytest.mark.parametrize("tier", TIERS)
def test_every_locked_package_carries_hashes(tier: str) -> None:
    locked = lock(tier)
    assert len(locked) > 10
    unhashed = sorted(name for name, (_v, _m, hashes) in locked.items() if hashes == 0)
    assert not unhashed, f"{tier}.lock entries without --hash: {unhashed}"


@pytest.mark.parametrize(("smaller", "larger"), list(itertools.pairwise(TIERS)))
def test_each_lock_extends_the_previous_one_unchanged(smaller: str, larger: str) -> None:
    small, large = lock(smaller), lock(larger)
    for name, (version, _m, _h) in small.items():
        assert name in large, f"{name} is in {smaller}.lock but not in {larger}.lock"
        assert large[name][0] == version, f"{name}: {smaller}.lock {version} vs {larger}.lock {large[name][0]}"


def test_the_deploy_tree_has_no_simulator_or_test_tools() -> None:
    deploy = lock("deploy")
    for name in ("moto", "matplotlib", "cfn-lint", "pytest", "typer", "awsiotsdk", "pyyaml"):
        assert name not in deploy, f"{name} would be installed for a cdk deploy"


def test_test_only_packages_stay_out_of_the_simulator_tree() -> None:
    simulator = pins(REQ / "simulator.in")
    assert "server" not in simulator["moto"][1], "moto[server] is for the tests only"
    for name in ("cryptography", "pytest", "cfn-lint"):
        assert name not in simulator, f"{name} is pinned for the simulator"
    for name in ("flask", "cfn-lint", "pytest"):  # what moto[server] or the test tools bring
        assert name not in lock("simulator"), f"{name} leaks into the simulator tree"


def test_moto_extras_exist_in_the_pinned_moto() -> None:
    provided = set(metadata.metadata("moto").get_all("Provides-Extra") or [])
    for tier in ("simulator", "dev"):
        extras = pins(REQ / f"{tier}.in")["moto"][1]
        assert extras <= provided, f"{tier}.in asks moto for extras it does not have: {sorted(extras - provided)}"


def test_this_venv_is_the_dev_lock() -> None:
    """`make setup` installed exactly the dev lock: every entry for this platform at its version."""
    wrong = []
    for name, (version, marker, _h) in lock("dev").items():
        if marker is not None and not Marker(marker).evaluate():
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong.append(f"{name} {installed} (lock {version})")
    assert not wrong, f"run make setup: {wrong}"
