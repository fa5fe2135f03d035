"""What can go wrong, and the exit code each one ends the command with."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REFUSED = 1  # the gateway answered 4xx: the request is wrong (the message says what)
EXIT_USAGE = 2  # bad arguments or a bad CSV (typer uses 2 for usage errors too)
EXIT_CONFIG = 3  # no TUMA_URL / TUMA_KEY
EXIT_UNREACHABLE = 4  # the gateway could not be reached, or answered 5xx
EXIT_UNFINISHED = 5  # bulk/status --watch: the deadline came before every message was final


class CliError(Exception):
    """Ends the command with `message` on stderr and `exit_code` (tuma_cli.main.command)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiRefused(CliError):
    """A 4xx in Tuma's error shape {"error": {"code", "message", "details"}}."""

    def __init__(self, status: int, body: object):
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        self.status = status
        self.code = error.get("code") or f"http_{status}"
        self.details = error.get("details") or []
        message = error.get("message") or f"HTTP {status}"
        lines = [f"{status} {self.code}: {message}"]
        lines += [f"  {d.get('field')}: {d.get('reason')}" for d in self.details[:20] if isinstance(d, dict)]
        if len(self.details) > 20:
            lines.append(f"  … and {len(self.details) - 20} more")
        super().__init__("\n".join(lines), EXIT_REFUSED)
