"""The errors the gateway answers with, in OpenAI's envelope terms."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GatewayError(Exception):
    """A request the gateway refuses or could not serve; the proxy renders it as JSON."""

    status: int
    code: str
    message: str
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def error_type(self) -> str:
        return {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
                403: "permission_error", 404: "not_found_error", 413: "invalid_request_error",
                429: "rate_limit_error"}.get(self.status, "api_error")

    @property
    def retryable(self) -> bool:
        """Whether a client retry could help; the SDKs' automatic retries follow this."""
        # Not for the client's own errors, nor after Waybill already tried every route (502, 503).
        return self.status not in (400, 401, 402, 403, 404, 405, 413, 502, 503)


def invalid_request(message: str) -> GatewayError:
    return GatewayError(400, "invalid_request", message)
