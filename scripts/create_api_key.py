"""Create an API key for a tenant in a deployed Tuma stack, and print it (it is shown only once).

    python scripts/create_api_key.py --stack tuma --tenant acme --sender-id ACME --sender-id ACMEALERTS \
        [--label "acme backend"]

Uses your normal AWS credentials and region (AWS_PROFILE, AWS_REGION), or AWS_ENDPOINT_URL for
the local stack. Only the key's SHA-256 is stored. A tenant's first key also creates its
callback signing secret, printed once on stderr (docs/callbacks.md).

The key may send only as the given --sender-id values (repeat it for more); another `from` is a
403 sender_id_not_allowed. --any-sender-id makes a key that may use any: say so on purpose.
The tenant's usage key (API Gateway API key `<stack>-<tenant>`, made on its first key and kept
for the next ones) joins the stack's usage plan, so every key of a tenant shares its throttle and
daily quota (docs/security.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layers" / "tuma"))
from tuma.domain.fields import job_schema_accepts, sender as check_sender  # noqa: E402
from tuma.store.api_keys import create_api_key  # noqa: E402
from tuma.store.tenants import ensure_signing_secret  # noqa: E402


def sender_id(value: str) -> str:
    """A sender id as the API accepts one in `from`."""
    problems: list[dict] = []
    check_sender(value, problems)
    if problems:
        raise argparse.ArgumentTypeError(f"{value!r} {problems[0]['reason']}")
    return value


def usage_key(stack_name: str, tenant: str, usage_plan_id: str) -> str:
    """The tenant's API Gateway usage key, made and attached to the usage plan on first use."""
    apigateway = boto3.client("apigateway")
    name = f"{stack_name}-{tenant}"
    found = [k for k in apigateway.get_api_keys(nameQuery=name, includeValues=True, limit=500)["items"]
             if k["name"] == name]
    if found:
        return found[0]["value"]
    key = apigateway.create_api_key(name=name, enabled=True, description=f"Tuma usage key of tenant {tenant}")
    apigateway.create_usage_plan_key(usagePlanId=usage_plan_id, keyId=key["id"], keyType="API_KEY")
    return key["value"]


def main() -> None:
    parser = argparse.ArgumentParser(description="Create a Tuma API key for a tenant.")
    parser.add_argument("--stack", default="tuma", help="CloudFormation stack name (default: tuma)")
    parser.add_argument("--tenant", required=True, help="tenant id the key belongs to")
    parser.add_argument("--label", default="", help="a note to tell keys apart")
    senders = parser.add_mutually_exclusive_group(required=True)
    senders.add_argument("--sender-id", action="append", dest="sender_ids", metavar="SENDER_ID",
                         type=sender_id, help="a sender id (`from`) the key may use; repeat for more")
    senders.add_argument("--any-sender-id", action="store_true", help="the key may use any sender id")
    args = parser.parse_args()
    if not job_schema_accepts("tenant_id", args.tenant):
        # The send job's own rule (tuma/schemas/send_job.v1.json): every job of such a tenant would fail.
        parser.error("--tenant must be 1 to 128 letters, digits, '.', '_' or '-'")
    stack = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    key_table = boto3.resource("dynamodb").Table(outputs["TableName"])
    print(create_api_key(args.tenant, label=args.label, key_table=key_table,
                         sender_ids=None if args.any_sender_id else args.sender_ids,
                         usage_key=usage_key(args.stack, args.tenant, outputs["TenantUsagePlanId"])))
    secret, created = ensure_signing_secret(args.tenant, secret_table=key_table)
    if created:
        print(f"callback signing secret of {args.tenant}: {secret}", file=sys.stderr)


if __name__ == "__main__":
    main()
