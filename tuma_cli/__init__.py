"""`tuma`: the command line for a Tuma gateway (send, estimate, status, cancel, balance, CSV bulk).

A separate package from the Lambda layer's `tuma`, so that typer and rich never reach a Lambda."""
