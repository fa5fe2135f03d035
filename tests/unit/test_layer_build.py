"""The layer as `sam build` makes it (layers/tuma/Makefile): bytecode Lambda can use from a
read-only /opt, and none of the packages the Lambda runtime brings (issue 12: cold start)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import costs  # noqa: E402  (its template reader knows SAM's !tags)

MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}[costs.template()["Parameters"]["Architecture"]["Default"]]
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> Path:
    artifacts = tmp_path_factory.mktemp("TumaLayer")
    # The build's python3.13 is the one running the tests (the venv's, as under `sam build`).
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    subprocess.run(["make", "--no-print-directory", "-C", str(REPO / "layers" / "tuma"), "build-TumaLayer",
                    f"ARTIFACTS_DIR={artifacts}"], env=env, check=True, capture_output=True)
    return artifacts / "python"


def test_every_module_of_the_layer_has_bytecode_checked_by_hash_not_by_mtime(layer):
    sources = [p for p in layer.rglob("*.py") if "wrapt-stubs" not in p.parts]
    assert len(sources) > 500  # the whole layer, dependencies included, not only tuma/
    missing, checked_by_mtime = [], []
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.exists():
            missing.append(source.relative_to(layer))
        elif int.from_bytes(cached.read_bytes()[4:8], "little") != UNCHECKED_HASH:
            checked_by_mtime.append(source.relative_to(layer))
    assert missing == [] and checked_by_mtime == []


def test_the_layer_does_not_shadow_what_the_lambda_runtime_brings(layer):
    present = {p.name for p in layer.iterdir()}
    assert present.isdisjoint({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py"})
    assert {"tuma", "aws_lambda_powertools", "aws_xray_sdk", "requests", "phonenumbers", "ulid"} <= present


def test_the_layer_carries_the_default_architectures_compiled_wheels(layer):
    assert sorted(p.name for p in layer.rglob("*.so")) == [
        f"{name}.cpython-313-{MACHINE}-linux-gnu.so" for name in ("_wrappers", "cd", "md")]


def test_the_layer_copies_tuma_as_it_is_in_the_repository(layer):
    ours = sorted(p.relative_to(REPO / "layers" / "tuma").as_posix()
                  for p in (REPO / "layers" / "tuma" / "tuma").rglob("*") if p.suffix in {".py", ".json"})
    built = sorted(p.relative_to(layer).as_posix() for p in (layer / "tuma").rglob("*") if p.suffix in {".py", ".json"})
    assert built == ours
