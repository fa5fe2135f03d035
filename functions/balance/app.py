"""GET /v1/account/balance: both providers' balances, from the shared cache while it is younger
than BALANCE_CACHE_S; one that fails is shown as unavailable, with its last known balance."""

from datetime import datetime, timezone

from tuma import api, settings
from tuma.domain.balances import balances
from tuma.observability import logger, tracer
from tuma.store.balances import DynamoBalanceCache

app = api.resolver()
cache = DynamoBalanceCache()


def _now() -> datetime:
    return datetime.now(timezone.utc)


@app.get("/v1/account/balance")
@tracer.capture_method
def get_balance():
    return balances(settings.providers(), cache, _now, settings.balance_cache_age())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    return app.resolve(event, context)
