"""AWS-backed stores: DynamoDB for messages and API keys, SQS for jobs."""
