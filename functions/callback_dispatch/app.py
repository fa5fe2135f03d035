"""The table's stream → one callback job per status change of a recipient whose send had a
callback_url, onto the callback queue. Never calls a client: a slow client cannot slow this,
the webhook or the sender."""

from tuma import lazy_powertools  # noqa: F401, I001  (first: the batch utility without every event class)
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from tuma.domain.callbacks import callback_job
from tuma.observability import logger, tracer
from tuma.store import callbacks

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def handle_record(record: DynamoDBRecord) -> None:
    if record.dynamodb is None:
        return
    job = callback_job(callbacks.message_change(record.dynamodb.old_image, record.dynamodb.new_image))
    if job:
        callbacks.enqueue(job)
        logger.info("callback queued", extra={"message_id": job["payload"]["message_id"],
                                              "status": job["payload"]["status"]})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
