"""How infra/ is wired: an acyclic import graph and no discovery in the construct tree (stages are passed in)."""

from __future__ import annotations

import ast
from pathlib import Path

from infra.config import DEFAULT_ENGINE
from tests.support.assembly import SynthCache

INFRA = Path(__file__).resolve().parents[2] / "infra"


def infra_imports(path: Path) -> set[str]:
    """The ``infra.*`` modules a module imports, ``if TYPE_CHECKING:`` imports included (a circle all the same)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("infra."):
            found.add(node.module.removeprefix("infra."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("infra.") for a in node.names if a.name.startswith("infra.")}
    return found


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (module -> modules it imports), or [] if there is none."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = "open"
        for nxt in sorted(graph.get(node, set())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = "done"
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return []


def test_cycle_finder_finds_a_circle() -> None:
    """Control: the check below can fail (monitoring -> stack -> monitoring was the circle this replaced)."""
    assert cycle({"monitoring": {"stack"}, "stack": {"monitoring", "common"}, "common": set()}) == [
        "monitoring",
        "stack",
        "monitoring",
    ]
    assert cycle({"stack": {"monitoring"}, "monitoring": {"common"}, "common": set()}) == []


def test_infra_imports_form_no_circle() -> None:
    graph = {p.stem: infra_imports(p) for p in INFRA.glob("*.py")}
    assert "monitoring" in graph["stack"] and "stack" not in graph["monitoring"]
    assert cycle(graph) == []


def test_no_construct_is_discovered_in_the_tree() -> None:
    """Stages get what they use as arguments: no ``node.find_all()`` walks, no ``getattr`` probing of constructs."""
    offenders = []
    for path in sorted(INFRA.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in ("find_all", "getattr", "hasattr"):
                    offenders.append(f"{path.name}:{node.lineno} {name}")
    assert offenders == []


def test_the_session_cache_synthesizes_each_context_once(synth_cache: SynthCache) -> None:
    """tests/infra and tests/integration share ``synth_cache``: the default engine is the same assembly."""
    default = synth_cache("air-quality")
    assert synth_cache("air-quality", DEFAULT_ENGINE) is default
    assert default.engine == DEFAULT_ENGINE and (default.outdir / "manifest.json").is_file()
    size = len(synth_cache)
    synth_cache("air-quality", DEFAULT_ENGINE)
    assert len(synth_cache) == size
