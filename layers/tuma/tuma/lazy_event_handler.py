"""Powertools' event_handler package, registered without running its `__init__` (importing this
module does it; tuma.api imports it before any Powertools resolver)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys


def lazy_package(name: str) -> None:
    """Register package `name` without running its `__init__`: each name that `__init__` would
    import from a submodule is imported from it when first asked for (PEP 562), and submodules
    load as usual. Powertools' event_handler `__init__` imports every resolver it has (AppSync
    with asyncio, Bedrock agents, VPC Lattice, HTTP...): about 40 ms of CPU of each API
    function's cold start (0.07 x `import boto3`) for the one resolver it uses."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    origins = {alias.asname or alias.name: node.module for node in ast.parse(spec.loader.get_source(name)).body
               if isinstance(node, ast.ImportFrom) and node.level == 0 for alias in node.names}
    package = importlib.util.module_from_spec(spec)

    def __getattr__(attribute: str):
        if attribute == "__all__":
            value = sorted(origins)
        elif attribute in origins:
            value = getattr(importlib.import_module(origins[attribute]), attribute)
        else:
            try:
                value = importlib.import_module(f"{name}.{attribute}")
            except ModuleNotFoundError as problem:
                if problem.name != f"{name}.{attribute}":
                    raise
                raise AttributeError(f"module {name!r} has no attribute {attribute!r}") from None
        setattr(package, attribute, value)
        return value

    package.__getattr__ = __getattr__
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, package)


lazy_package("aws_lambda_powertools.event_handler")
