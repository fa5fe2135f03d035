"""The one price table of the bench (AWS us-east-1 list prices, on-demand, as of November 2026),
and the few assumptions about how clients use Tuma that a price depends on.

Every figure in bench/results.json's cost scenarios is a count the bench made (requests, bytes,
milliseconds) times a price from here; nothing else is priced anywhere."""

PRICES_USD = {
    # API Gateway REST API, first 333 million requests a month. (HTTP API: 1.00; a Function URL: 0.)
    "api_gateway_rest_per_million": 3.50,
    "api_gateway_http_per_million": 1.00,
    "lambda_per_million_requests": 0.20,
    "lambda_per_gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    # Standard queue; every 64 KiB chunk of a request's payload bills as one request.
    "sqs_per_million_requests": 0.40,
    # On-demand: a write unit per KB written (a failed conditional write is billed too), a read
    # unit per 4 KB read strongly consistently (half a unit eventually consistently).
    "dynamodb_per_million_write_units": 0.625,
    "dynamodb_per_million_read_units": 0.125,
    # Standard table class, past the 25 GB the free tier keeps; point-in-time recovery bills the
    # same bytes again while it is on.
    "dynamodb_storage_per_gb_month": 0.25,
    "dynamodb_pitr_per_gb_month": 0.20,
    # Lambda's own reads of a table's stream (an event source mapping) are free.
    "cloudwatch_logs_ingest_per_gb": 0.50,
    "cloudwatch_logs_storage_per_gb_month": 0.03,  # compressed; counted as stored uncompressed (an upper bound)
    "xray_per_million_traces_recorded": 5.00,
}

ASSUMPTIONS = {
    # DynamoDB bills storage by each item's size plus 100 bytes of overhead per item.
    "dynamodb_item_overhead_bytes": 100,
    # CloudWatch Logs bills each log event's bytes plus 26 bytes of metadata.
    "log_event_overhead_bytes": 26,
    # The authorizer's answer is cached per key for ReauthorizeEvery (300 s): a client sending
    # one request a second calls it once per 300 requests.
    "authorizer_calls_per_api_request": 1 / 300,
    # Lambda's START/END/REPORT lines per invocation when the system log level lets them through
    # (text format; JSON platform records are longer).
    "platform_log_bytes_per_invocation": 330,
    # A DynamoDB or SQS request from Lambda in the same region, round trip. The bench bills this
    # instead of moto's time for requests made on the invocation's own thread (requests from
    # worker threads stay at moto's time: an over-estimate).
    "aws_request_ms": 6,
    # Lambda gives a function CPU in proportion to its memory, one full vCPU at 1,769 MB: the
    # bench stretches a handler's measured CPU time by that ratio below it.
    "full_vcpu_mb": 1769,
    # X-Ray's default sampling rule (1 request a second, then 5 %) at volume: the fraction of
    # traced requests. Lambda's own sampling for Active tracing is fixed at this too.
    "xray_default_sample_rate": 0.05,
}
