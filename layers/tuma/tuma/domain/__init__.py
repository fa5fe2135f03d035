"""The gateway's rules. Nothing here imports boto3 or requests: stores and providers are passed in."""
