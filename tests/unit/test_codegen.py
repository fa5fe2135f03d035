"""The layer's generated modules are what scripts/codegen.py makes of today's schemas and libraries
(else: run `python -m scripts.codegen`)."""

from __future__ import annotations

from scripts import codegen


def test_generated_modules_are_up_to_date():
    stale = [path.name for path, text in codegen.outputs().items() if path.read_text(encoding="utf-8") != text]
    assert stale == [], "run: .venv/bin/python -m scripts.codegen"
