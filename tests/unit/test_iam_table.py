"""docs/security.md's IAM table is the template's function policies, statement for statement, and
the table item keys each function may touch are the ones it should: a drift in either fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((REPO / "template.yaml").read_text())
FUNCTIONS = {name: resource for name, resource in TEMPLATE["Resources"].items()
             if resource["Type"] == "AWS::Serverless::Function"}
ARN_PREFIX = re.compile(r"^arn:\$\{AWS::Partition\}:[a-z]+:\$\{AWS::Region\}:\$\{AWS::AccountId\}:")


def _resource(value) -> str:
    """A statement's resource as the doc writes it: a logical id, or an ARN's tail."""
    if isinstance(value, list):
        return ", ".join(_resource(v) for v in value)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return target[0] if isinstance(target, list) else target.split(".")[0]
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    if isinstance(value, dict) and "Fn::Sub" in value:
        return ARN_PREFIX.sub("", value["Fn::Sub"])
    return str(value)


def _rows_of_template() -> set[tuple[str, frozenset, str]]:
    rows = set()
    for name, function in FUNCTIONS.items():
        for policy in function["Properties"].get("Policies") or []:
            assert set(policy) == {"Statement"}, f"{name}: write policies as statements (no SAM policy templates)"
            for statement in policy["Statement"]:
                assert statement["Effect"] == "Allow"
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resource = _resource(statement["Resource"])
                keys = (statement.get("Condition") or {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
                if keys:
                    resource += ": " + " ".join(keys)
                rows.add((name, frozenset(actions), resource))
    return rows


def _rows_of_doc() -> set[tuple[str, frozenset, str]]:
    text = (REPO / "docs" / "security.md").read_text()
    section = text.split("## IAM: what each function may do", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("function", "") or set(cells[0]) <= {"-"}:
            continue
        function, actions, resource, why = (cell.replace("`", "") for cell in cells)
        assert why, f"{function}: say why"
        rows.add((function, frozenset(a.strip() for a in actions.split(",")), " ".join(resource.split())))
    return rows


def test_the_docs_iam_table_is_the_templates_policies():
    template, doc = _rows_of_template(), _rows_of_doc()
    assert sorted(template - doc, key=str) == [], "in the template, not in docs/security.md"
    assert sorted(doc - template, key=str) == [], "in docs/security.md, not in the template"


def test_every_function_has_its_policies_in_the_table():
    with_policies = {name for name, function in FUNCTIONS.items() if function["Properties"].get("Policies")}
    assert {row[0] for row in _rows_of_doc()} == with_policies


def _actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def _table_statements(name: str) -> list[dict]:
    return [s for p in FUNCTIONS[name]["Properties"].get("Policies") or [] for s in p["Statement"]
            if any(a.startswith("dynamodb:") for a in _actions(s))]


def _leading_keys(statement: dict) -> list[str]:
    return statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]


def test_every_table_statement_is_held_to_key_prefixes():
    for name in FUNCTIONS:
        for statement in _table_statements(name):
            keys = _leading_keys(statement)
            assert keys and "*" not in keys, name
            assert not {"dynamodb:Scan", "dynamodb:*"} & set(_actions(statement)), name


@pytest.mark.parametrize("name,allowed", [
    ("AuthorizerFunction", {"KEY#*"}),  # API keys only: not the tenants' messages
    ("WebhookFunction", {"PMSG#*", "T#*"}),  # a public URL: reports and the messages they move
    ("CallbackFunction", {"TENANT#*"}),  # the tenants' signing secrets only
    ("StatusFunction", {"T#*"}), ("CancelFunction", {"T#*"}), ("SendFunction", {"T#*"}), ("BulkFunction", {"T#*"}),
])
def test_a_function_reaches_only_the_items_it_needs(name, allowed):
    keys = {key for statement in _table_statements(name) for key in _leading_keys(statement)}
    assert keys == allowed


def test_the_public_webhook_cannot_create_or_delete_messages():
    for statement in _table_statements("WebhookFunction"):
        if "T#*" in _leading_keys(statement):
            assert _actions(statement) == ["dynamodb:UpdateItem"]


def test_the_sender_may_run_the_partiql_inserts_its_store_makes():
    """tuma.store.sending writes message items with BatchExecuteStatement INSERTs: on AWS that is
    dynamodb:PartiQLInsert, which no other action grants (MiniStack does not check IAM)."""
    assert "batch_execute_statement" in (REPO / "layers/tuma/tuma/store/sending.py").read_text()
    granted = [statement for policy in FUNCTIONS["SenderFunction"]["Properties"]["Policies"]
               for statement in policy["Statement"] if "dynamodb:PartiQLInsert" in statement["Action"]]
    assert [set(_leading_keys(statement)) for statement in granted] == [{"T#*"}]
