"""The providers' balance cache, shared by every instance of the balance and monitor functions:
one item per provider, `PROVIDER#<name>` / `BALANCE`, beside the provider's circuit breaker
(`PROVIDER#<name>` / `CIRCUIT`, tuma.store.circuit). No tenant: a provider account is Tuma's, and
the prefix cannot meet the tenant-, key- or bucket-prefixed keys of tuma.store.table.

The item is kept past its freshness as the provider's last known balance."""

from __future__ import annotations

import json
from datetime import datetime

from botocore.exceptions import ClientError

from tuma.domain.balances import KnownBalance
from tuma.domain.times import iso_millis
from tuma.store.table import expires_at, is_conditional_failure, provider_key, table

BALANCE_SK = "BALANCE"


def balance_key(provider: str) -> dict:
    return provider_key(provider, BALANCE_SK)


class DynamoBalanceCache:
    def latest(self, provider: str) -> KnownBalance | None:
        item = table().get_item(Key=balance_key(provider), ConsistentRead=True).get("Item")
        if item is None:
            return None
        return KnownBalance(provider, json.loads(item["details"]), datetime.fromisoformat(item["fetched_at"]))

    def remember(self, balance: KnownBalance) -> None:
        fetched_at = iso_millis(balance.fetched_at)
        try:
            table().put_item(
                Item={**balance_key(balance.provider), "kind": "provider_balance", "provider": balance.provider,
                      # A JSON string, not a map: the fields are the adapter's, passed through as
                      # they are, and DynamoDB would turn their numbers into Decimals (and refuse floats).
                      "details": json.dumps(balance.details), "fetched_at": fetched_at,
                      "expires_at": expires_at(balance.fetched_at)},
                # Two instances may fetch at once: the later balance stays, whichever writes last.
                # (Same-format UTC ISO strings order as their times do.)
                ConditionExpression="attribute_not_exists(pk) OR fetched_at < :fetched_at",
                ExpressionAttributeValues={":fetched_at": fetched_at})
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise
