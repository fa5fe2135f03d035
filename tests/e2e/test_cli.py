"""The `tuma` CLI against the deployed stack: a 1,000-row CSV from estimate to results CSV."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from local.stack import ROOT

WAITING = {"scheduled", "queued", "sending"}


def tuma(stack, *args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUMA_URL": stack.api_url, "TUMA_KEY": stack.api_key,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "tuma")]), "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "tuma_cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_1000_row_csv_ends_with_every_row_final_and_results_matching_get(stack, client, sayasms, sms254, tmp_path):
    rows = [(f"+2547{20000000 + i:08d}", f"Mteja{i}", f"KE{i:04d}") for i in range(997)]
    rows += [("12345", "Bad", "KE9997"), ("0712", "Short", "KE9998"), (rows[0][0], "Mteja0", "KE0000")]
    contacts = tmp_path / "contacts.csv"
    # As Excel writes it in a `;` locale: a byte-order mark and semicolons.
    contacts.write_bytes(("\ufeffphone;name;order\r\n" + "".join(f"{n};{m};{o}\r\n" for n, m, o in rows)).encode())

    run = tuma(stack, "bulk", str(contacts), "--from", "MYSHOP", "--template", "Habari {name}, oda {order} iko tayari",
               "--yes", "--timeout", "300", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "estimate" in run.stderr and "sendable" in run.stderr

    with (tmp_path / "contacts.results.csv").open(encoding="utf-8", newline="") as f:
        results = list(csv.DictReader(f))
    assert [r["number"] for r in results] == [n for n, _, _ in rows]
    assert not [r for r in results if r["status"] in WAITING]
    assert {r["status"] for r in results[-3:]} == {"rejected"} and "duplicate" in results[-1]["reason"]
    assert sum(r["status"] == "sent" for r in results) == 997

    def matches(row: dict) -> bool:
        view = client.get(f"/v1/messages/{row['message_id']}").json()
        return (view["status"], str(view.get("cost") or ""), view.get("reason") or "") == (
            row["status"], row["cost"], row["reason"])

    with ThreadPoolExecutor(8) as pool:
        mismatched = [row["message_id"] for row, ok in zip(results, pool.map(matches, results)) if not ok]
    assert mismatched == []
    # Every sendable row reached a provider exactly once, with its own text.
    sent = Counter((m["to"], m["body"]) for call in sayasms.requests("/v1/messages/bulk") for m in call["body"]["messages"])
    sent += Counter((f"+{phone}", call["body"]["message"]) for call in sms254.requests("/sendsms")
                    for phone in call["body"]["phone"].split(","))
    assert sent == Counter((n, f"Habari {m}, oda {o} iko tayari") for n, m, o in rows[:997])


def test_cli_without_configuration_exits_3(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TUMA_URL", "TUMA_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "layers" / "tuma")])
    run = subprocess.run([sys.executable, "-m", "tuma_cli", "balance"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 3 and "TUMA_URL" in run.stderr
