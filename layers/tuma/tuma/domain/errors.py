"""Errors the domain raises; handlers turn them into the API's JSON error shape."""

from __future__ import annotations


class ApiError(Exception):
    """A caller's mistake: answered with a 4xx and `{"error": {"code", "message", "details"}}`."""

    status = 400

    def __init__(self, code: str, message: str, details: list | dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details if details is not None else []

    def to_body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationFailed(ApiError):
    status = 400


class TooLarge(ApiError):
    status = 413


class Forbidden(ApiError):
    """The caller is known, but this key may not do what it asks (e.g. send as another's sender id)."""

    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    """The request is well formed but the resource's state refuses it (e.g. cancelling a sent message)."""

    status = 409


class Forbidden(ApiError):
    status = 403


class Unprocessable(ApiError):
    """Well formed, but contradicts an earlier request (an Idempotency-Key reused with another body)."""

    status = 422


class Unavailable(ApiError):
    """Tuma could not finish now; the same request (with its Idempotency-Key) can be retried."""

    status = 503
