"""Idempotency-Key records (Stripe's semantics) with Powertools Idempotency on the one table:

  T#<tenant>#IDEM / <kind>#<md5 of tenant and key>    one key's record: in progress, or done with
                                                     its small result; the body's hash beside it

Same key and body within EXPIRES_S: the first result again, the work is not run. Same key, other
body: Unprocessable (422). The first request still running: Conflict (409). A run that raises
leaves no record (Powertools deletes it), so a retry runs again: the work itself must resume what
the failed run did (tuma.accepting does, by the request id the key derives)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError, IdempotencyValidationError)

from tuma.domain.errors import Conflict, Unprocessable
from tuma.store.table import table

EXPIRES_S = 24 * 3600  # Stripe's window


@cache
def _records() -> DynamoDBPersistenceLayer:
    # The table's own client (one UA hook registered, once); TTL removes records through expires_at.
    return DynamoDBPersistenceLayer(table_name=os.environ["TABLE_NAME"], key_attr="pk", sort_key_attr="sk",
                                    expiry_attr="expires_at", boto3_client=table().meta.client)


def once(kind: str, tenant_id: str, key: str, payload: object, work: Callable[[], dict],
         lambda_context=None) -> dict:
    """`work()`'s result for this tenant's `key`, running it only if no earlier request with the
    key ran it to the end; the result must be a small JSON object (it is stored)."""
    records = _records()
    records.static_pk_value = f"T#{tenant_id}#IDEM"  # per tenant: keys are the tenant's own
    config = IdempotencyConfig(event_key_jmespath="[tenant, key]", payload_validation_jmespath="payload",
                               raise_on_no_idempotency_key=True, expires_after_seconds=EXPIRES_S)
    if lambda_context is not None:
        # A record left in progress by a timed-out invocation can be taken over once it is past.
        config.register_lambda_context(lambda_context)

    @idempotent_function(data_keyword_argument="request", persistence_store=records, config=config, key_prefix=kind)
    def run(request: dict) -> dict:
        return work()

    try:
        return run(request={"tenant": tenant_id, "key": key, "payload": payload})
    except IdempotencyValidationError:
        raise Unprocessable("idempotency_key_reused", "This Idempotency-Key was used with a different request body "
                            "in the last 24 hours: use a new key for a new request.",
                            [{"field": "Idempotency-Key", "reason": "already used with another body"}]) from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict("request_in_progress", "A request with this Idempotency-Key is still being accepted: "
                       "retry in a few seconds.",
                       [{"field": "Idempotency-Key", "reason": "a request with it is in progress"}]) from None
