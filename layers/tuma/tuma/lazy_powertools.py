"""Two Powertools packages registered without running their `__init__`, each of which imports
every module it has whatever one is asked for. Importing this module registers them: import it
before Powertools' event_handler or batch utility (tuma.api does; so does every function with a
batch processor).

- aws_lambda_powertools.event_handler: every resolver (AppSync with asyncio, Bedrock agents, VPC
  Lattice, HTTP...), for the one an API function uses: about 40 ms of CPU of its cold start.
- aws_lambda_powertools.utilities.data_classes: every event class (about 40 event sources), for
  the REST API's (the event handler) or SQS's (the batch utility)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys


def lazy_package(name: str) -> None:
    """Register package `name` without running its `__init__`: each name that `__init__` would
    import from a submodule is imported from it when first asked for (PEP 562), and submodules
    load as usual."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    origins = {alias.asname or alias.name: importlib.util.resolve_name("." * node.level + (node.module or ""), name)
               for node in ast.parse(spec.loader.get_source(name)).body
               if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}
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
lazy_package("aws_lambda_powertools.utilities.data_classes")
