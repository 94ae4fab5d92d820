"""The house rules, checked on the source: data flows one way (spec/layout → lambdas → infra → local_aws /
simulator), the local runtime knows nothing of the product, and the Lambda asset ships only what a handler runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAMBDAS = ROOT / "lambdas"
PRODUCT = {"sentinel_core", "infra", "simulator", *(p.name for p in LAMBDAS.iterdir() if (p / "__init__.py").exists())}


def imports_of(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute imports; relative ones stay in the package)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def tops(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("path", sorted((ROOT / "local_aws").rglob("*.py")), ids=lambda p: p.name)
def test_local_aws_imports_nothing_of_the_product(path: Path) -> None:
    assert not tops(imports_of(path)) & PRODUCT, f"{path.relative_to(ROOT)} imports the product"


def test_the_boundary_check_sees_a_product_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from sentinel_core.layout import live_root\nimport infra.config\n")
    assert tops(imports_of(bad)) & PRODUCT == {"sentinel_core", "infra"}


@pytest.mark.parametrize("folder", ["lambdas", "infra"])
def test_lower_layers_do_not_import_upper_ones(folder: str) -> None:
    upper = {"local_aws", "simulator", "tests", "benchmarks"} | ({"infra"} if folder == "lambdas" else set())
    for path in sorted((ROOT / folder).rglob("*.py")):
        assert not tops(imports_of(path)) & upper, f"{path.relative_to(ROOT)} imports an upper layer"


def _closure(start: list[Path]) -> set[str]:
    """Every ``sentinel_core`` module reachable from the handlers' imports."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for name in imports_of(todo.pop()):
            parts = name.split(".")
            if parts[0] != "sentinel_core" or len(parts) < 2:
                continue
            module = parts[1]
            path = LAMBDAS / "sentinel_core" / f"{module}.py"
            if path.exists() and module not in seen:
                seen.add(module)
                todo.append(path)
    return seen


def test_every_sentinel_core_module_is_run_by_a_lambda_or_deployed_by_the_stack() -> None:
    """No test-only or simulator-only code in the one Lambda asset: each module is imported by some handler, or is a
    contract the CDK app deploys (the device policy document, which ``provision`` must create identically)."""
    handlers = [p for p in LAMBDAS.glob("*/*.py") if p.parent.name != "sentinel_core"]
    modules = {p.stem for p in (LAMBDAS / "sentinel_core").glob("*.py") if p.stem != "__init__"}
    assert modules - _closure(handlers) - _closure(sorted((ROOT / "infra").rglob("*.py"))) == set()


def test_the_asset_check_sees_a_module_nothing_runs(tmp_path: Path) -> None:
    handler = tmp_path / "app.py"
    handler.write_text("from sentinel_core import spec\nfrom sentinel_core.layout import live_root\n")
    assert {"layout", "spec"} <= _closure([handler])
    assert "iot_policy" not in _closure([handler])
