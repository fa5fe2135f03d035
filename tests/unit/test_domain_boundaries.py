"""The domain reads stored records, never storage keys (issue 11): the keys' layout lives in
tuma.store (tuma.store.table), which hands the domain typed records (tuma.domain.records)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "layers" / "tuma" / "tuma" / "domain"
# A key attribute's name, or a piece of a key: T#<tenant>#M#<request>, C#/R#/J#<n>, KEY#, PROVIDER#.
KEY_TEXT = re.compile(r"^(pk|sk)$|(^|#)(T|M|C|R|J|KEY|PROVIDER)#")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes: prose may describe a key, code may not build or parse one."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def key_texts(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string in code that names a key attribute or holds a piece of a key."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and KEY_TEXT.search(node.value)]


@pytest.mark.parametrize("path", sorted(DOMAIN.glob("*.py")), ids=lambda p: p.name)
def test_the_domain_reads_no_storage_key(path):
    assert key_texts(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("code", ['int(chunk["sk"][2:])', 'item.get("pk", "")', 'sk.startswith("R#")',
                                  'pk.rpartition("#M#")', 'f"T#{tenant}"', 'head.startswith("T#")'])
def test_the_scan_finds_each_way_the_domain_used_to_read_a_key(code):
    assert key_texts(code) != []


def test_the_scan_leaves_docstrings_and_other_text_alone():
    assert key_texts('"""`T#<tenant>#M#<id>` is the key."""\nx = "message #1 of TUMA#"') == []
