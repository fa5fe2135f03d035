"""The `tuma` command (typer + rich). Each command is a few lines over tuma_cli.client and .bulk;
errors end the command with a message on stderr and an exit code from tuma_cli.errors."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tuma_cli import bulk as bulk_flow
from tuma_cli import config
from tuma_cli.client import Client
from tuma_cli.contacts import check_template, read_contacts
from tuma_cli.errors import EXIT_UNFINISHED, CliError

app = typer.Typer(help="Send SMS through a Tuma gateway. Reads TUMA_URL and TUMA_KEY from the environment "
                       "or from .tuma/local.env (written by `make run`).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out = Console()
err = Console(stderr=True)
state = {"json": False}

To = Annotated[list[str], typer.Option("--to", help="A recipient (0712…, +254712…); repeat for more.")]
From = Annotated[str, typer.Option("--from", help="Sender id: ≤ 11 letters and digits, or ≤ 15 digits.")]
Body = Annotated[str, typer.Option("--body", help="The message text.")]
Provider = Annotated[str | None, typer.Option(help="Pin a provider: 254sms or sayasms (default: routing decides).")]


@app.callback()
def _options(as_json: Annotated[bool, typer.Option("--json", help="Print the gateway's JSON answers.")] = False):
    state["json"] = as_json


def command(name: str | None = None):
    """app.command, with a CliError turned into its message on stderr and its exit code."""
    def register(function):
        @functools.wraps(function)
        def handled(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except CliError as problem:
                err.print(Text.assemble(("error: ", "red"), problem.message), highlight=False, soft_wrap=True)
                raise typer.Exit(problem.exit_code) from None
        return app.command(name)(handled)
    return register


def _client() -> Client:
    return Client(config.load())


def _show(answer: dict, table: Table | None = None) -> None:
    if state["json"] or table is None:
        out.print_json(json.dumps(answer))
    else:
        out.print(table)


def _send_body(to, sender, body, provider, callback_url=None, at=None) -> dict:
    payload = {"to": to, "from": sender, "body": body}
    for name, value in (("provider", provider), ("callback_url", callback_url), ("scheduled_at", at)):
        if value:
            payload[name] = value
    return payload


def _recipients_table(title: str, recipients: list[dict]) -> Table:
    table = Table(title=title)
    for column in ("number", "message id", "status", "cost", "reason"):
        table.add_column(column)
    for r in recipients:
        table.add_row(r.get("number", ""), r.get("message_id", ""), r.get("status", ""), str(r.get("cost") or ""),
                      r.get("reason") or "")
    return table


@command()
def send(to: To, sender: From, body: Body, provider: Provider = None,
         callback_url: Annotated[str | None, typer.Option(help="Where to POST status changes.")] = None,
         at: Annotated[str | None, typer.Option(help="Send later: ISO 8601 with Z or an offset.")] = None):
    """Send one message to one or more numbers (POST /v1/messages)."""
    answer = _client().post("/v1/messages", _send_body(to, sender, body, provider, callback_url, at))
    _show(answer, _recipients_table(f"{answer['message_id']}: {answer['status']}, {answer['segments']} segment(s) "
                                    f"{answer['encoding']}", answer["recipients"]))


@command()
def estimate(to: To, sender: From, body: Body, provider: Provider = None):
    """What a send would be and cost, without sending (POST /v1/messages/estimate)."""
    answer = _client().post("/v1/messages/estimate", _send_body(to, sender, body, provider))
    table = Table(title=f"{answer['sendable']} of {answer['recipients']} sendable, {answer['segments']} segment(s) "
                        f"{answer['encoding']} ({answer['characters']} characters)")
    table.add_column("provider")
    table.add_column("per segment")
    table.add_column("estimated cost")
    for name, cost in answer["estimated_cost"].items():
        table.add_row(name, answer["cost_per_segment"].get(name, ""), cost)
    _show(answer, table)
    for rejected in answer["rejected"]:
        err.print(f"rejected: {rejected['number']}: {rejected['reason']}")


def _status_path(message_id: str) -> str:
    # A bare batch id (bat_… without _n) has its own route: counts, not messages.
    is_batch = message_id.startswith("bat_") and message_id.count("_") == 1
    return f"/v1/batches/{message_id}" if is_batch else f"/v1/messages/{message_id}"


def _status_table(answer: dict) -> Table:
    if "recipients" in answer:
        return _recipients_table(f"{answer['message_id']}: {answer.get('counts')}", answer["recipients"])
    if "counts" in answer:
        table = Table(title=f"{answer['batch_id']}: {answer['total']} messages, "
                            f"{'done' if answer.get('done') else 'in progress'}")
        table.add_column("status")
        table.add_column("messages", justify="right")
        for status, count in sorted(answer["counts"].items()):
            table.add_row(status, str(count))
        return table
    table = Table(title=answer["message_id"], show_header=False)
    for name in ("number", "status", "provider", "encoding", "segments", "cost", "reason"):
        if answer.get(name) is not None:
            table.add_row(name, str(answer[name]))
    for event in answer.get("history", []):
        table.add_row(event.get("at", ""), event.get("status", "") + (f" ({event['reason']})" if event.get("reason") else ""))
    return table


def _settled(answer: dict) -> bool:
    if "done" in answer:
        return bool(answer["done"])
    if "recipients" in answer:
        return all(r.get("status") not in bulk_flow.WAITING for r in answer["recipients"])
    return answer.get("status") not in bulk_flow.WAITING


@command()
def status(message_id: Annotated[str, typer.Argument(help="msg_…, msg_…_n, bat_… or bat_…_n")],
           watch: Annotated[bool, typer.Option(help="Poll until nothing is queued or sending.")] = False,
           timeout: Annotated[float, typer.Option(help="Seconds --watch waits at most.")] = 300):
    """Status of a message, a request or a batch (GET /v1/messages/{id}, GET /v1/batches/{id})."""
    client, path = _client(), _status_path(message_id)
    answer = client.get(path)
    deadline = time.monotonic() + timeout
    while watch and not _settled(answer) and time.monotonic() < deadline:
        if not state["json"]:
            err.print(f"[dim]{answer.get('status') or answer.get('counts')}…[/dim]")
        time.sleep(1)
        answer = client.get(path)
    _show(answer, _status_table(answer))
    if watch and not _settled(answer):
        raise typer.Exit(EXIT_UNFINISHED)


@command()
def cancel(message_id: Annotated[str, typer.Argument(help="msg_…, msg_…_n, bat_… or bat_…_n")]):
    """Cancel what the sender has not taken yet (DELETE /v1/messages/{id})."""
    _show(_client().delete(f"/v1/messages/{message_id}"))


@command()
def balance():
    """Both providers' balances (GET /v1/account/balance)."""
    answer = _client().get("/v1/account/balance")
    providers = answer.get("providers", answer)
    table = Table(title="balances")
    table.add_column("provider")
    table.add_column("balance")
    table.add_column("available")
    for name, view in (providers.items() if isinstance(providers, dict) else []):
        if isinstance(view, dict):
            figures = view if view.get("available") else view.get("last_known") or {}
            shown = figures.get("balance", figures.get("credits", ""))
            table.add_row(name, str(shown), str(view.get("available", "")) + (f" ({view['reason']})" if view.get("reason") else ""))
    _show(answer, table if table.row_count else None)


@command("bulk")
def bulk_command(
        contacts_csv: Annotated[Path, typer.Argument(help="CSV: a number column (number, phone, to, msisdn, …) "
                                                          "and one column per template variable; , or ; separated.")],
        sender: From,
        template: Annotated[str, typer.Option(help='e.g. "Hi {name}, your order {order} is ready".')],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Send without asking.")] = False,
        provider: Provider = None,
        number_column: Annotated[str | None, typer.Option(help="The number column's name, if not a usual one.")] = None,
        out_csv: Annotated[Path | None, typer.Option("--out", help="Results CSV (default: <file>.results.csv).")] = None,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for every message to be final.")] = 1800):
    """Send a personalised message to every row of a CSV, watch it go, and write a results CSV."""
    contacts = read_contacts(contacts_csv, number_column)
    check_template(template, contacts)
    client = _client()
    plan = bulk_flow.estimate(client, contacts, template, sender)
    _print_estimate(plan)
    if plan.sendable == 0:
        raise CliError("No row of the CSV can be sent (see the reasons above).", 1)
    if not yes and not typer.confirm(f"Send {plan.sendable} message(s)?", default=False, err=True):
        err.print("Nothing sent.")
        raise typer.Exit(1)
    batches = bulk_flow.send(client, contacts, template, sender, {"provider": provider} if provider else {})
    err.print("batch(es): " + ", ".join(b.batch_id for b in batches))
    with Progress(TextColumn("[bold]sending"), BarColumn(), MofNCompleteColumn(), TextColumn("final"),
                  TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task("send", total=len(contacts))
        finished = bulk_flow.watch(client, batches, lambda n: progress.update(task, completed=n), timeout)
    rows = bulk_flow.results(client, batches)
    path = out_csv or bulk_flow.default_results_path(contacts_csv)
    bulk_flow.write_results(path, rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    err.print(f"{', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}; cost {bulk_flow.total_cost(rows)}; "
              f"results in {path}")
    if not finished:
        err.print(f"[yellow]Not every message was final after {timeout:.0f} s: run `tuma status <batch id> --watch`.")
        raise typer.Exit(EXIT_UNFINISHED)


def _print_estimate(plan: bulk_flow.Estimate) -> None:
    table = Table(title="estimate", show_header=False)
    table.add_row("rows", str(plan.rows))
    table.add_row("sendable", str(plan.sendable))
    table.add_row("rejected before sending", str(len(plan.rejected)))
    table.add_row("segments", str(plan.segments))
    for provider, cost in plan.cost.items():
        table.add_row(f"cost via {provider}", cost)
    table.add_row("requests", str(plan.requests))
    err.print(table)
    for row, reason in plan.rejected[:10]:
        err.print(f"  line {row}: {reason}")
    if len(plan.rejected) > 10:
        err.print(f"  … and {len(plan.rejected) - 10} more")


def run() -> None:
    """The console script."""
    app()
