"""The NowPayments API client (aiohttp): invoices, with timeouts and retries on 5xx and network errors only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import aiohttp

from .backoff import Backoff
from .config import NowPaymentsConfig
from .errors import TelepaydError

logger = logging.getLogger(__name__)

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0


class PaymentProviderError(TelepaydError):
    """NowPayments refused or could not be reached; the order is kept so a retry reuses it."""


@dataclass(frozen=True)
class Invoice:
    id: str
    url: str


class NowPaymentsClient:
    """One aiohttp session for the daemon's life; settings are read per call (the key reloads on SIGHUP)."""

    def __init__(self, settings: Callable[[], NowPaymentsConfig]) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def create_invoice(
        self, *, order_id: str, price: Decimal, currency: str, description: str, success_url: str | None = None
    ) -> Invoice:
        payload: dict[str, object] = {
            "price_amount": float(price),  # at most two decimals (numeric(12,2)): exact as a JSON number
            "price_currency": currency,
            "order_id": order_id,
            "order_description": description[:200],
            "ipn_callback_url": self._settings().ipn_callback_url,
        }
        if success_url:
            payload["success_url"] = success_url
        answer = await self._post("/invoice", payload)
        invoice_id, url = answer.get("id"), answer.get("invoice_url")
        if not invoice_id or not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PaymentProviderError("NowPayments answered an invoice without id or invoice_url")
        return Invoice(str(invoice_id), url)

    async def _post(self, path: str, payload: dict[str, object]) -> dict:
        assert self._session is not None, "start() first"
        settings = self._settings()
        url = settings.api_base_url.rstrip("/") + path
        backoff = Backoff(first=0.5, most=2.0)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._session.post(url, json=payload, headers={"x-api-key": settings.api_key}) as response:
                    if response.status < 300:
                        answer = await response.json(content_type=None)
                        if not isinstance(answer, dict):
                            raise PaymentProviderError("NowPayments answered something that is not a JSON object")
                        return answer
                    text = (await response.text())[:200]
                    if response.status < 500:
                        raise PaymentProviderError(f"NowPayments refused {path}: {response.status} {text}")
                    problem = f"{response.status} {text}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            logger.warning("NowPayments %s attempt %d/%d failed: %s", path, attempt, ATTEMPTS, problem)
            if attempt < ATTEMPTS:
                await asyncio.sleep(backoff.next())
        raise PaymentProviderError(f"NowPayments {path} failed {ATTEMPTS} times: {problem}")
