"""The `tuma` CLI against a fake gateway on loopback: a ThreadingHTTPServer that answers like Tuma
(the routes' shapes) and records every request it got, headers included."""

from __future__ import annotations

import csv
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuma.domain import bulk as domain_bulk
from tuma_cli import bulk as bulk_flow
from tuma_cli import config
from tuma_cli.errors import EXIT_CONFIG, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from tuma_cli.main import app

KEY = "tuma_test_key"
BOM = "\ufeff"


class FakeGateway:
    """Tuma's routes as the CLI uses them. Batches finish after `polls_to_finish` GETs; numbers
    ending in 9 are `failed` with a reason; `refuse` answers every POST with that (status, body)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.batches: dict[str, dict] = {}
        self.polls_to_finish = 2
        self.refuse: tuple[int, dict] | None = None
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                gateway.requests.append({"method": method, "path": self.path, "body": body,
                                         "headers": dict(self.headers)})
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self._answer(403, {"error": {"code": "forbidden", "message": "This API key is not valid.",
                                                        "details": []}})
                self._answer(*gateway.route(method, self.path, body))

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/local"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method: str, path: str, body) -> tuple[int, dict]:
        path = path.removeprefix("/local")
        if method == "POST" and self.refuse:
            return self.refuse
        if (method, path) == ("POST", "/v1/messages/estimate"):
            return 200, {"provider": None, "encoding": "GSM-7", "characters": 5, "units": 5, "segments": 1,
                         "recipients": len(body["to"]), "sendable": len(body["to"]), "rejected": [],
                         "cost_per_segment": {"254sms": "KES 0.80", "sayasms": "KES 0.90"},
                         "estimated_cost": {"254sms": "KES 0.80", "sayasms": "KES 0.90"}}
        if (method, path) == ("POST", "/v1/messages/bulk"):
            batch_id = f"bat_01JD{len(self.batches):022d}"
            rejected = [{"index": i, "to": r["to"], "reason": "number is not a Kenyan mobile number"}
                        for i, r in enumerate(body["recipients"]) if not r["to"].strip("+").isdigit()]
            self.batches[batch_id] = {"recipients": body["recipients"], "polls": 0, "rejected": rejected,
                                      "template": body["template"]}
            return 202, {"status": "queued", "batch_id": batch_id, "accepted": len(body["recipients"]) - len(rejected),
                         "rejected": rejected}
        if method == "POST" and path == "/v1/messages":
            return 202, {"status": "queued", "message_id": "msg_01JD0000000000000000000000", "provider": None,
                         "encoding": "GSM-7", "segments": 1, "created_at": "2026-12-02T00:00:00.000Z",
                         "recipients": [{"number": n, "status": "queued", "message_id": f"msg_01JD0000000000000000000000_{i}"}
                                        for i, n in enumerate(body["to"], start=1)]}
        if method == "GET" and (match := re.fullmatch(r"/v1/batches/(bat_\w{26})", path)):
            batch = self.batches[match[1]]
            batch["polls"] += 1
            total, rejected = len(batch["recipients"]), len(batch["rejected"])
            if batch["polls"] >= self.polls_to_finish:
                failed = sum(1 for r in batch["recipients"] if r["to"].endswith("9"))
                counts = {"sent": total - rejected - failed, "failed": failed, "rejected": rejected}
            else:
                counts = {"queued": total - rejected, "rejected": rejected}
            return 200, {"batch_id": match[1], "total": total, "counts": {k: v for k, v in counts.items() if v},
                         "done": batch["polls"] >= self.polls_to_finish}
        if method == "GET" and (match := re.fullmatch(r"/v1/messages/(bat_\w{26})_(\d+)", path)):
            entry = self.batches[match[1]]["recipients"][int(match[2]) - 1]
            if entry["to"].endswith("9"):
                return 200, {"message_id": match[0], "status": "failed", "reason": "absent subscriber"}
            return 200, {"message_id": match[0], "status": "sent", "cost": "KES 0.80", "cost_estimated": True}
        if method == "GET" and path.startswith("/v1/messages/msg_"):
            polls = sum(1 for r in self.requests if r["path"].endswith(path))
            return 200, {"message_id": path.rsplit("/", 1)[1], "status": "queued" if polls < 3 else "sent",
                         "history": []}
        if method == "DELETE":
            return 409, {"error": {"code": "nothing_to_cancel", "message": "Every message was already sent.",
                                   "details": []}}
        return 404, {"error": {"code": "not_found", "message": f"No route {method} {path}.", "details": []}}

    def posts(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith(path)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(monkeypatch, tmp_path):
    fake = FakeGateway()
    monkeypatch.setenv("TUMA_URL", fake.url)
    monkeypatch.setenv("TUMA_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bulk_flow.time, "sleep", lambda s: None)
    monkeypatch.setattr("tuma_cli.main.time.sleep", lambda s: None)
    monkeypatch.setattr("tuma_cli.client.time.sleep", lambda s: None)
    yield fake
    fake.close()


def run(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input)


def write_csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes(((BOM if bom else "") + text).encode("utf-8"))
    return path


def read_results(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# --- bulk ------------------------------------------------------------------------------------


def test_bulk_reads_an_excel_csv_with_its_bom_and_semicolons(gateway, tmp_path):
    contacts = write_csv(tmp_path / "contacts.csv",
                         "number;name;order\r\n0712345678;Grace;KE2041\r\n0722111222;Peter;KE2042\r\n;;\r\n", bom=True)
    result = run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}, order {order} is ready", "--yes")
    assert result.exit_code == 0, result.output
    [post] = gateway.posts("/v1/messages/bulk")
    assert post["body"]["recipients"] == [{"to": "0712345678", "vars": {"name": "Grace", "order": "KE2041"}},
                                          {"to": "0722111222", "vars": {"name": "Peter", "order": "KE2042"}}]
    assert post["body"]["template"] == "Hi {name}, order {order} is ready"


def test_bulk_splits_more_than_one_request_of_rows_each_with_its_own_idempotency_key(gateway, tmp_path, monkeypatch):
    monkeypatch.setattr(bulk_flow, "MAX_PER_REQUEST", 3)
    rows = "\n".join(f"07123456{i:02d},N{i}" for i in range(7))
    contacts = write_csv(tmp_path / "c.csv", "phone,name\n" + rows + "\n")
    result = run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}", "--yes")
    assert result.exit_code == 0, result.output
    posts = gateway.posts("/v1/messages/bulk")
    assert [len(p["body"]["recipients"]) for p in posts] == [3, 3, 1]
    keys = [p["headers"].get("Idempotency-Key") for p in posts]
    assert all(keys) and len(set(keys)) == 3
    results = read_results(tmp_path / "c.results.csv")
    assert [r["message_id"] for r in results] == [f"{b}_{i}" for b, n in zip(gateway.batches, (3, 3, 1))
                                                  for i in range(1, n + 1)]


def test_bulk_request_bound_is_the_gateways():
    assert bulk_flow.MAX_PER_REQUEST == domain_bulk.MAX_MESSAGES == 10_000


def test_a_retried_bulk_post_carries_the_same_idempotency_key(gateway, tmp_path):
    contacts = write_csv(tmp_path / "c.csv", "number,name\n0712345678,Grace\n")
    original = gateway.route
    failures = iter([True, True])

    def flaky(method, path, body):
        if method == "POST" and path.endswith("/v1/messages/bulk") and next(failures, False):
            return 503, {"message": "Service Unavailable"}
        return original(method, path, body)
    gateway.route = flaky
    result = run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}", "--yes")
    assert result.exit_code == 0, result.output
    posts = gateway.posts("/v1/messages/bulk")
    assert len(posts) == 3 and len({p["headers"]["Idempotency-Key"] for p in posts}) == 1
    assert len(gateway.batches) == 1


def test_bulk_shows_the_estimate_and_sends_nothing_when_the_answer_is_no(gateway, tmp_path):
    contacts = write_csv(tmp_path / "c.csv", "number,name\n0712345678,Grace\n0722111222,Peter\nnot-a-number,X\n")
    result = run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}", input="n\n")
    assert result.exit_code == 1
    assert gateway.posts("/v1/messages/bulk") == []
    assert "sendable" in result.output and "KES 1.60" in result.output and "KES 1.80" in result.output
    assert "line 4: number" in result.output


def test_bulk_results_csv_has_every_row_with_the_gateways_status_cost_and_reason(gateway, tmp_path):
    contacts = write_csv(tmp_path / "c.csv", "number,name\n0712345678,Grace\nnope,X\n0722111229,Peter\n")
    result = run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}", "--yes",
                 "--out", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    [batch_id] = gateway.batches
    assert read_results(tmp_path / "out.csv") == [
        {"number": "0712345678", "message_id": f"{batch_id}_1", "status": "sent", "cost": "KES 0.80", "reason": ""},
        {"number": "nope", "message_id": f"{batch_id}_2", "status": "rejected", "cost": "",
         "reason": "number is not a Kenyan mobile number"},
        {"number": "0722111229", "message_id": f"{batch_id}_3", "status": "failed", "cost": "",
         "reason": "absent subscriber"}]
    # The progress was watched until the batch said done.
    assert gateway.batches[batch_id]["polls"] == gateway.polls_to_finish


def test_bulk_refuses_a_template_variable_the_csv_has_no_column_for(gateway, tmp_path):
    contacts = write_csv(tmp_path / "c.csv", "number,name\n0712345678,Grace\n")
    result = run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}, {order}", "--yes")
    assert result.exit_code == EXIT_USAGE
    assert "{order}" in result.output
    assert gateway.requests == []


def test_bulk_names_the_columns_when_there_is_no_number_column(gateway, tmp_path):
    contacts = write_csv(tmp_path / "c.csv", "who,name\n0712345678,Grace\n")
    result = run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}", "--yes")
    assert result.exit_code == EXIT_USAGE and "who, name" in result.output
    assert run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}", "--yes",
               "--number-column", "who").exit_code == 0


# --- the other commands, errors and configuration -----------------------------------------------


def test_send_posts_the_sayasms_shape_and_shows_the_ids(gateway):
    result = run("send", "--to", "0712345678", "--to", "0722111222", "--from", "MYSHOP", "--body", "Hello")
    assert result.exit_code == 0, result.output
    assert gateway.posts("/v1/messages")[0]["body"] == {"to": ["0712345678", "0722111222"], "from": "MYSHOP",
                                                        "body": "Hello"}
    assert "msg_01JD0000000000000000000000_2" in result.output


def test_a_refused_request_exits_1_with_the_gateways_code_and_details(gateway):
    gateway.refuse = (400, {"error": {"code": "invalid_request", "message": "`from` must be at most 11 letters.",
                                      "details": [{"field": "from", "reason": "must be at most 11 letters"}]}})
    result = run("send", "--to", "0712345678", "--from", "WAYTOOLONGSENDER", "--body", "Hello")
    assert result.exit_code == EXIT_REFUSED
    assert "400 invalid_request" in result.output and "from: must be at most 11 letters" in result.output


def test_a_gateway_that_cannot_be_reached_exits_4(gateway, monkeypatch):
    gateway.close()
    result = run("balance")
    assert result.exit_code == EXIT_UNREACHABLE and "Cannot reach" in result.output


def test_no_url_or_key_exits_3_saying_where_to_set_them(monkeypatch, tmp_path):
    monkeypatch.delenv("TUMA_URL", raising=False)
    monkeypatch.delenv("TUMA_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    result = run("balance")
    assert result.exit_code == EXIT_CONFIG
    assert "TUMA_URL and TUMA_KEY not set" in result.output and ".tuma/local.env" in result.output


def test_config_comes_from_local_env_in_a_parent_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("TUMA_URL", raising=False)
    monkeypatch.delenv("TUMA_KEY", raising=False)
    (tmp_path / ".tuma").mkdir()
    (tmp_path / ".tuma" / "local.env").write_text("# made by make run\nTUMA_URL=http://127.0.0.1:1/local/\n"
                                                  "TUMA_KEY='tuma_abc'\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    loaded = config.load(cwd=tmp_path / "deep" / "er")
    assert loaded == config.Config(url="http://127.0.0.1:1/local", key="tuma_abc")
    # The environment wins over the file.
    assert config.load({"TUMA_URL": "https://x.example", "TUMA_KEY": "k"}, tmp_path).url == "https://x.example"


def test_status_watch_polls_until_the_message_is_no_longer_waiting(gateway):
    result = run("status", "msg_01JD0000000000000000000000_1", "--watch")
    assert result.exit_code == 0, result.output
    gets = [r for r in gateway.requests if r["method"] == "GET"]
    assert len(gets) == 3 and "sent" in result.output


def test_status_of_a_bare_batch_id_reads_the_batch_route(gateway, tmp_path):
    contacts = write_csv(tmp_path / "c.csv", "number,name\n0712345678,Grace\n")
    run("bulk", str(contacts), "--from", "MYSHOP", "--template", "Hi {name}", "--yes")
    [batch_id] = gateway.batches
    result = run("--json", "status", batch_id)
    assert result.exit_code == 0 and json.loads(result.output)["batch_id"] == batch_id


def test_cancel_of_something_already_sent_exits_1_with_409(gateway):
    result = run("cancel", "msg_01JD0000000000000000000000")
    assert result.exit_code == EXIT_REFUSED and "409 nothing_to_cancel" in result.output


def test_a_wrong_key_exits_1_with_403(gateway, monkeypatch):
    monkeypatch.setenv("TUMA_KEY", "tuma_wrong")
    result = run("balance")
    assert result.exit_code == EXIT_REFUSED and "403 forbidden" in result.output
