"""The shared layer serves every architecture a function may run on (issue 12: arm64)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import costs  # noqa: E402  (its template reader knows SAM's !tags)


def test_the_layer_is_compatible_with_every_allowed_architecture():
    template = costs.template()
    allowed = template["Parameters"]["Architecture"]["AllowedValues"]
    layer = template["Resources"]["TumaLayer"]
    assert sorted(layer["Properties"]["CompatibleArchitectures"]) == sorted(allowed)
    # Built for the default architecture, whose compiled wheels then load on AWS.
    assert layer["Metadata"]["BuildArchitecture"] == template["Parameters"]["Architecture"]["Default"]


def test_the_layer_makefile_builds_for_the_default_architecture():
    template = costs.template()
    assert template["Resources"]["TumaLayer"]["Metadata"]["BuildMethod"] == "makefile"
    makefile = (REPO / "layers" / "tuma" / "Makefile").read_text()
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[template["Parameters"]["Architecture"]["Default"]]
    assert f"PLATFORM := manylinux2014_{machine}\n" in makefile
