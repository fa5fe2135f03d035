"""Where the CLI finds its gateway: TUMA_URL and TUMA_KEY from the environment, else from the
`.tuma/local.env` that `make run` writes (looked for in this folder and the ones above it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tuma_cli.errors import EXIT_CONFIG, CliError

LOCAL_ENV = Path(".tuma") / "local.env"


@dataclass(frozen=True)
class Config:
    url: str
    key: str


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (blank lines, comments and `export ` ignored; quotes around a value removed)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        values[name.strip()] = value.strip().strip("'\"")
    return values


def find_local_env(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / LOCAL_ENV).is_file():
            return folder / LOCAL_ENV
    return None


def load(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Config:
    environ = os.environ if environ is None else environ
    url, key = environ.get("TUMA_URL"), environ.get("TUMA_KEY")
    if not (url and key):
        found = find_local_env(cwd or Path.cwd())
        local = read_env_file(found) if found else {}
        url, key = url or local.get("TUMA_URL"), key or local.get("TUMA_KEY")
    missing = [name for name, value in (("TUMA_URL", url), ("TUMA_KEY", key)) if not value]
    if missing:
        raise CliError(f"{' and '.join(missing)} not set. Export them (the API's URL and an API key), "
                       f"or run `make run`, which writes them to {LOCAL_ENV}.", EXIT_CONFIG)
    if not url.startswith(("http://", "https://")):
        raise CliError(f"TUMA_URL must be an http(s) URL, not {url!r}.", EXIT_CONFIG)
    return Config(url=url.rstrip("/"), key=key)
