"""GET /v1/account/balance: both providers' balances, from the shared cache while it is younger
than BALANCE_CACHE_S; one that fails is shown as unavailable, with its last known balance. Each
provider's circuit breaker state is shown too (tuma.domain.circuit)."""

from datetime import datetime, timezone

from tuma import api, settings
from tuma.domain.balances import balances
from tuma.domain.circuit import circuit_view
from tuma.observability import logger, tracer
from tuma.store.balances import DynamoBalanceCache
from tuma.store.circuit import read_circuit

app = api.resolver()
cache = DynamoBalanceCache()


def _now() -> datetime:
    return datetime.now(timezone.utc)


@app.get("/v1/account/balance")
@tracer.capture_method
def get_balance():
    answer = balances(settings.providers(), cache, _now, settings.balance_cache_age())
    for name, shown in answer["providers"].items():
        shown["circuit"] = circuit_view(read_circuit(name))  # whether the sender calls it now
    return answer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    return app.resolve(event, context)
