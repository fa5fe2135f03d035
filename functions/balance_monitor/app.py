"""On a schedule: both providers' balances, asked fresh (the shared cache is rewritten with them),
and one `ProviderBalance` metric per provider, dimensioned by `provider`, for the low-balance
alarms of template.yaml. Each figure is in the provider's own unit: 254sms its SMS credits,
SayaSMS its balance in KES. A provider whose balance cannot be read publishes no balance (its
alarm treats the missing datapoint as breaching) and a `ProviderBalanceCheckFailed` count."""

from datetime import datetime, timedelta, timezone

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from tuma import settings
from tuma.domain.balances import BALANCE_FIGURES, balance_figure, check_all
from tuma.observability import NAMESPACE, logger, tracer
from tuma.store.balances import DynamoBalanceCache

BALANCE_METRIC = "ProviderBalance"
FAILURE_METRIC = "ProviderBalanceCheckFailed"
# CloudWatch has no currency unit: KES goes as "None"; 254sms's credits are a count of SMS.
UNITS = {"254sms": MetricUnit.Count, "sayasms": MetricUnit.NoUnit}

cache = DynamoBalanceCache()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _publish(name: str, unit: MetricUnit, value: float, provider: str) -> None:
    # One EMF document per provider: the providers' dimensions differ, and a metric set has one.
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="provider", value=provider)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    # max_age zero: the metric is always a balance read now, never one from the cache.
    checks = check_all(settings.providers(), cache, _now, max_age=timedelta(0))
    summary = {}
    for provider, result in checks.items():
        figure = balance_figure(result)
        if figure is None:
            reason = (result.problem.reason if result.problem
                      else f"no readable {BALANCE_FIGURES.get(provider, 'balance')} in the answer")
            logger.warning("balance check failed", extra={"provider": provider, "reason": reason})
            _publish(FAILURE_METRIC, MetricUnit.Count, 1, provider)
            summary[provider] = {"available": False, "reason": reason}
        else:
            logger.info("provider balance", extra={"provider": provider, "balance": figure})
            _publish(BALANCE_METRIC, UNITS.get(provider, MetricUnit.NoUnit), figure, provider)
            summary[provider] = {"available": True, "balance": figure}
    return summary
