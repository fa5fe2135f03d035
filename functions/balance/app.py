"""GET /v1/account/balance: both providers' balances; one that fails is shown as unavailable."""

from tuma import api, settings
from tuma.domain.balances import balances
from tuma.observability import logger, tracer

app = api.resolver()


@app.get("/v1/account/balance")
@tracer.capture_method
def get_balance():
    return balances(settings.providers())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    return app.resolve(event, context)
