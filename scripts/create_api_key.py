"""Create an API key for a tenant in a deployed Tuma stack, and print it (it is shown only once).

    python scripts/create_api_key.py --stack tuma --tenant acme [--label "acme backend"]

Uses your normal AWS credentials and region (AWS_PROFILE, AWS_REGION), or AWS_ENDPOINT_URL for
the local stack. Only the key's SHA-256 is stored. A tenant's first key also creates its
callback signing secret, printed once on stderr (docs/callbacks.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layers" / "tuma"))
from tuma.domain.fields import job_schema_accepts  # noqa: E402
from tuma.store.api_keys import create_api_key  # noqa: E402
from tuma.store.tenants import ensure_signing_secret  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="Create a Tuma API key for a tenant.")
    parser.add_argument("--stack", default="tuma", help="CloudFormation stack name (default: tuma)")
    parser.add_argument("--tenant", required=True, help="tenant id the key belongs to")
    parser.add_argument("--label", default="", help="a note to tell keys apart")
    args = parser.parse_args()
    if not job_schema_accepts("tenant_id", args.tenant):
        # The send job's own rule (tuma/schemas/send_job.v1.json): every job of such a tenant would fail.
        parser.error("--tenant must be 1 to 128 letters, digits, '.', '_' or '-'")
    stack = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    key_table = boto3.resource("dynamodb").Table(outputs["TableName"])
    print(create_api_key(args.tenant, label=args.label, key_table=key_table))
    secret, created = ensure_signing_secret(args.tenant, secret_table=key_table)
    if created:
        print(f"callback signing secret of {args.tenant}: {secret}", file=sys.stderr)


if __name__ == "__main__":
    main()
