"""HTTP error answers: ``{"error": "<code>", "detail": "<one human sentence>"}``, raised as ``ApiError``."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from .errors import TelepaydError

RETRY_AFTER_SECONDS = 5


class ApiError(TelepaydError):
    """An answer to give the client; raised anywhere below the views, rendered by the context middleware."""

    def __init__(self, status: int, error: str, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, "detail": self.detail}, status=self.status, headers=self.headers)


def database_unavailable(detail: str = "The database is unavailable; retry later.") -> ApiError:
    return ApiError(503, "database_unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
