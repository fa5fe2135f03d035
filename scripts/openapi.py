"""Generate docs/openapi.json (OpenAPI 3.1) from the JSON Schema declarations in
layers/tuma/tuma/schemas/ and the route table below.

    .venv/bin/python -m scripts.openapi           # write docs/openapi.json
    .venv/bin/python -m scripts.openapi --check   # exit 1 if docs/openapi.json is not what this writes

Each schema file becomes a component named by its `title`; references into send_job.v1.json (the
queue's job format) are inlined, so the API and the queue share one definition of `from`, `body`,
`provider` and `callback_url`; a file's own `$defs` become components of their own."""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "layers" / "tuma" / "tuma" / "schemas"
OUTPUT = ROOT / "docs" / "openapi.json"
SHARED = "send_job.v1.json"  # inlined where referenced, not a component: it is the queue's, not a route's

ERRORS = {
    400: "The request is malformed or nothing in it is sendable (`details` names every problem).",
    401: "No `Authorization: Bearer <key>` header.",
    403: "The API key is not valid.",
    404: "No such message, batch, number or route for this tenant.",
    409: "The resource's state refuses the request (e.g. cancelling what was already sent), or a request "
         "with this Idempotency-Key is still being processed.",
    413: "Too many recipients (1,000 per send, 10,000 per bulk) or too large a body.",
    422: "This Idempotency-Key was used before with a different request body.",
    429: "Too many requests: slow down and retry.",
}
READ, WRITE, IDEMPOTENT_WRITE = (401, 403, 429), (400, 401, 403, 413, 429), (400, 401, 403, 409, 413, 422, 429)

ID_PATTERN = "^(msg|bat)_[0-9A-HJKMNP-TV-Z]{26}(_[1-9][0-9]{0,5})?$"
NUMBER_PATTERN = r"^\+?[0-9]{9,12}$"

# (method, path, operationId, summary, request schema file, (status, response schema file), errors, options)
ROUTES = [
    ("post", "/v1/messages", "sendMessage", "Send one body to up to 1,000 numbers",
     "send_request.v1.json", (202, "send_response.v1.json"), IDEMPOTENT_WRITE, {"idempotency": True}),
    ("post", "/v1/messages/estimate", "estimateMessage", "What a send would be and cost, without sending",
     "send_request.v1.json", (200, "estimate_response.v1.json"), WRITE, {}),
    ("post", "/v1/messages/bulk", "sendBulk", "Up to 10,000 personalised messages",
     "bulk_request.v1.json", (202, "bulk_response.v1.json"), IDEMPOTENT_WRITE, {"idempotency": True}),
    ("get", "/v1/messages/{message_id}", "getMessage", "Status, cost and history of a message or a request",
     None, (200, "message_response.v1.json"), (*READ, 404), {}),
    ("delete", "/v1/messages/{message_id}", "cancelMessage", "Cancel what the sender has not taken yet",
     None, (200, "message_response.v1.json"), (*READ, 404, 409), {}),
    ("get", "/v1/batches/{batch_id}", "getBatch", "Progress counts of a bulk batch",
     None, (200, "batch_response.v1.json"), (*READ, 404), {}),
    ("get", "/v1/account/balance", "getBalance", "Both providers' balances",
     None, (200, "balance_response.v1.json"), READ, {}),
    ("get", "/v1/suppressions", "listSuppressions", "The tenant's opt-out list, a page at a time",
     None, (200, "suppression_list.v1.json"), (400, *READ), {"paged": True}),
    ("put", "/v1/suppressions/{number}", "suppressNumber", "Put a number on the opt-out list",
     "suppression_request.v1.json", (200, "suppression.v1.json"), (400, *READ), {"optional_body": True}),
    ("get", "/v1/suppressions/{number}", "getSuppression", "Whether a number is on the opt-out list",
     None, (200, "suppression.v1.json"), (400, *READ, 404), {}),
    ("delete", "/v1/suppressions/{number}", "unsuppressNumber", "Take a number off the opt-out list",
     None, (200, "unsuppressed.v1.json"), (400, *READ, 404), {}),
    ("post", "/v1/compat/254sms/sendsms", "sms254SendSms", "254sms's own send request (the key in the body)",
     "compat_254sms_request.v1.json", (200, "compat_254sms_response.v1.json"), (), {"compat": True}),
]
PATH_PARAMETERS = {
    "message_id": ("msg_…, msg_…_n, bat_… or bat_…_n", ID_PATTERN),
    "batch_id": ("bat_…", "^bat_[0-9A-HJKMNP-TV-Z]{26}$"),
    "number": ("A Kenyan mobile number: 0712…, 254712…, +254712… (`+` may be sent as %2B)", NUMBER_PATTERN),
}


def load(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def _pointer(document: dict, pointer: str):
    node = document
    for part in filter(None, pointer.lstrip("/").split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class Builder:
    def __init__(self):
        self.components: dict[str, dict] = {}
        self.names = {name: load(name)["title"] for name in sorted(p.name for p in SCHEMAS.glob("*.json"))
                      if name != SHARED}

    def component(self, name: str) -> dict:
        """A $ref to the component made from schema file `name` (made once)."""
        title = self.names[name]
        if title not in self.components:
            self.components[title] = {}  # reserve: a file may refer to itself
            schema = load(name)
            defs = schema.pop("$defs", {})
            for def_name, definition in defs.items():
                self.components[f"{title}_{def_name}"] = self._rewrite(definition, name, title)
            self.components[title] = self._rewrite(schema, name, title)
        return {"$ref": f"#/components/schemas/{title}"}

    def _rewrite(self, node, file: str, title: str):
        if isinstance(node, list):
            return [self._rewrite(item, file, title) for item in node]
        if not isinstance(node, dict):
            return node
        node = {k: v for k, v in node.items() if k not in ("$schema", "$id")}
        ref = node.pop("$ref", None)
        rewritten = {k: self._rewrite(v, file, title) for k, v in node.items()}
        if ref is None:
            return rewritten
        target, _, pointer = ref.partition("#")
        if target == SHARED:
            # The job format's own definition, copied: one source for the queue and the API.
            return {**self._rewrite(copy.deepcopy(_pointer(load(SHARED), pointer)), SHARED, title), **rewritten}
        if target == "" and pointer.startswith("/$defs/"):
            return {"$ref": f"#/components/schemas/{title}_{pointer.split('/')[2]}", **rewritten}
        if target and not pointer:
            return {**self.component(target), **rewritten}
        raise ValueError(f"{file}: cannot place $ref {ref!r} in the spec")


def _json_body(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def operation(builder: Builder, method, path, operation_id, summary, request, success, errors, options) -> dict:
    status, response = success
    op = {"operationId": operation_id, "summary": summary, "responses": {
        str(status): {"description": "OK" if status == 200 else "Accepted", **_json_body(builder.component(response))}}}
    error_ref = builder.component("error.v1.json")
    for code in errors:
        op["responses"][str(code)] = {"description": ERRORS[code], **_json_body(error_ref)}
    if options.get("compat"):
        op["security"] = []  # the key is in the body
        op["description"] = ("For apps written against 254sms: change only the URL (and use a Tuma key). "
                             "Errors keep 254sms's codes: X000 (HTTP 400), X001 (HTTP 401).")
        compat = builder.component("compat_254sms_response.v1.json")
        op["responses"]["400"] = {"description": "X000: a parameter is missing or the request cannot be sent.",
                                  **_json_body(compat)}
        op["responses"]["401"] = {"description": "X001: the api_key is not a valid Tuma key.", **_json_body(compat)}
    parameters = [{"name": name, "in": "path", "required": True, "description": PATH_PARAMETERS[name][0],
                   "schema": {"type": "string", "pattern": PATH_PARAMETERS[name][1]}}
                  for name in PATH_PARAMETERS if "{" + name + "}" in path]
    if options.get("idempotency"):
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "description": "Any unique text (≤ 255 characters): a retried request with the same key "
                                          "and body is answered as the first was, and sends nothing twice.",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
    if options.get("paged"):
        parameters += [
            {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                           "maximum": 1000, "default": 100}},
            {"name": "cursor", "in": "query", "required": False, "description": "`next_cursor` of the page before.",
             "schema": {"type": "string"}}]
    if parameters:
        op["parameters"] = parameters
    if request:
        op["requestBody"] = {"required": not options.get("optional_body"), **_json_body(builder.component(request))}
    return op


def build() -> dict:
    builder = Builder()
    paths: dict[str, dict] = {}
    for route in ROUTES:
        paths.setdefault(route[1], {})[route[0]] = operation(builder, *route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tuma", "version": "1.0.0",
                 "description": "A serverless SMS gateway for Kenyan businesses, in front of 254sms and SayaSMS. "
                                "Generated by `python -m scripts.openapi` from layers/tuma/tuma/schemas/: "
                                "do not edit by hand."},
        "servers": [{"url": "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
                     "variables": {"api_id": {"default": "api"}, "region": {"default": "eu-west-1"},
                                   "stage": {"default": "prod"}}}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A Tuma API key: `Authorization: Bearer tuma_…`."}},
            "schemas": dict(sorted(builder.components.items())),
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/openapi.json is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python -m scripts.openapi", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(build()['paths'])} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
