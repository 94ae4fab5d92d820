"""The console's web files from the asset zip, plus the deploy-time ``config.json``: standard library only."""

from __future__ import annotations

import io
import json
import mimetypes
import posixpath
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# index.html and config.json change with every deploy and must be re-read at once; the rest is small and
# revalidated after 5 minutes (the distribution is also invalidated on each deploy).
NO_CACHE = ("index.html", "config.json")
SHORT_CACHE = "public, max-age=300"
SKIPPED = ("headers.json",)  # infra/console.py's source of the response-headers policy, not a page


@dataclass(frozen=True)
class WebFile:
    key: str
    body: bytes
    content_type: str
    cache_control: str


def content_type(name: str) -> str:
    known = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json"}
    ext = posixpath.splitext(name)[1].lower()
    guessed = known.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return guessed + ("; charset=utf-8" if guessed.startswith("text/") or guessed.endswith("json") else "")


def web_files(archive: bytes, config: Mapping[str, Any]) -> list[WebFile]:
    """Every file of the zip (directories and ``SKIPPED`` left out) and ``config.json`` from ``config``."""
    files: list[WebFile] = []
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for info in zf.infolist():
            name = info.filename.lstrip("/")
            if info.is_dir() or name in SKIPPED or name == "config.json" or ".." in name.split("/"):
                continue
            files.append(WebFile(name, zf.read(info), content_type(name), _cache(name)))
    body = json.dumps(dict(config), indent=2, sort_keys=True).encode()
    files.append(WebFile("config.json", body, content_type("config.json"), _cache("config.json")))
    return sorted(files, key=lambda f: f.key)


def _cache(name: str) -> str:
    return "no-cache" if name in NO_CACHE else SHORT_CACHE
