"""How long a provider call may take: apart from tuma.providers.http so that the sender can size
its time budget without loading `requests` at its cold start."""

import os

CONNECT_TIMEOUT_S = 3.05
# How long to wait for an answer once the request is out; past it the message is `unknown`.
READ_TIMEOUT_S = float(os.environ.get("PROVIDER_READ_TIMEOUT_S", "10"))
