"""Synthesize every preset x engine and write the templates with asset hashes masked, to compare two trees.

One shard must keep today's stack byte for byte (issue 16): run this on the tree before a change and after it,
then ``diff -r BEFORE AFTER``::

    python -m tests.support.synth_snapshot /tmp/before            # on the old tree
    python -m tests.support.synth_snapshot /tmp/after '{"detector_shards": 1}'
    diff -r /tmp/before /tmp/after && echo identical

Asset hashes (the Lambda code zip's, 64 hex digits) are masked: they change with any source edit, and say nothing
about the stack's resources.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def snapshot(out: Path, extra: dict[str, object]) -> list[Path]:
    from infra.app import build_app

    written = []
    for preset in ("air-quality", "loyalty", "ecommerce"):
        for engine in ("builtin", "lookout"):
            assembly = out / "assemblies" / f"{preset}-{engine}"
            build_app({"preset": preset, "engine": engine, **extra}, str(assembly))
            (template,) = assembly.glob("*.template.json")
            target = out / f"{preset}-{engine}.json"
            target.write_text(re.sub(r"[0-9a-f]{64}", "<hash>", template.read_text()))
            written.append(target)
    return written


if __name__ == "__main__":
    for path in snapshot(Path(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}):
        print(path)
