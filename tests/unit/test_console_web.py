"""The deploy-time web copier's file list: every file of the web folder's zip, config.json from the stack, types."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from console_web import app, logic

WEB = Path(__file__).resolve().parents[2] / "web"


def web_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(WEB.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(WEB).as_posix())
        zf.writestr("../escape.js", "x")
    return buf.getvalue()


def test_every_web_file_and_the_stack_config_are_deployed() -> None:
    files = {f.key: f for f in logic.web_files(web_zip(), {"mode": "cognito", "auth": {"clientId": "abc"}})}
    assert {"index.html", "app.js", "auth.js", "style.css", "vendor/uPlot.iife.min.js", "config.json"} <= set(files)
    assert "headers.json" not in files and "../escape.js" not in files
    assert json.loads(files["config.json"].body) == {"auth": {"clientId": "abc"}, "mode": "cognito"}
    assert files["app.js"].content_type == "text/javascript; charset=utf-8"
    assert files["index.html"].cache_control == "no-cache" and files["app.js"].cache_control.startswith("public")


def test_the_answer_goes_only_to_an_https_url() -> None:
    event = {"ResponseURL": "http://example.com/x", "ResourceProperties": {"WebBucket": "b"}}
    with pytest.raises(ValueError, match="https"):
        app.respond(event, "SUCCESS", "", {})
