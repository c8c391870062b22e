"""The NowPayments API client (aiohttp): invoices and payment lookups, with timeouts and retries on 5xx,
429 and network errors only. Only the API key is used: never the dashboard login (it also authorises payouts)."""

from __future__ import annotations

import asyncio
import json
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
MAX_ANSWER_BYTES = 65536  # NowPayments' answers are a few hundred bytes
TIMEOUT_SECONDS = 10.0


class PaymentProviderError(TelepaydError):
    """NowPayments refused or could not be reached; the order is kept so a retry reuses it. ``transient``:
    worth trying again later (5xx, 429, a timeout, the network), rather than a refusal (4xx)."""

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status  # the HTTP status of a refusal
        self.detail = detail  # the start of its body


class PaymentNotFound(PaymentProviderError):
    """NowPayments knows no payment with that id (for this API key)."""


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
        answer = await self._call("POST", "/invoice", payload)
        invoice_id, url = answer.get("id"), answer.get("invoice_url")
        if not invoice_id or not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PaymentProviderError("NowPayments answered an invoice without id or invoice_url")
        return Invoice(str(invoice_id), url)

    async def get_payment(self, payment_id: int, *, attempts: int = 1) -> dict:
        """``GET /v1/payment/{id}``: the payment as NowPayments has it now (payment_id, payment_status,
        order_id, price_amount, price_currency, actually_paid, pay_currency, ...). Raises ``PaymentNotFound``
        for an id it does not know, ``PaymentProviderError`` otherwise. One attempt by default: the callers
        (the reconcile sweep, a waiting buyer) have their own way of trying again."""
        try:
            return await self._call("GET", f"/payment/{int(payment_id)}", None, attempts=attempts)
        except PaymentProviderError as exc:
            if not _means_not_found(exc):
                raise
            raise PaymentNotFound(f"NowPayments knows no payment {payment_id}") from None

    async def _call(self, method: str, path: str, payload: dict[str, object] | None, *, attempts: int = ATTEMPTS) -> dict:
        assert self._session is not None, "start() first"
        settings = self._settings()
        url = settings.api_base_url.rstrip("/") + path
        backoff = Backoff(first=0.5, most=2.0)
        for attempt in range(1, attempts + 1):
            try:
                async with self._session.request(method, url, json=payload, headers={"x-api-key": settings.api_key}) as response:
                    if response.status < 300:
                        return _json_object(await response.content.read(MAX_ANSWER_BYTES + 1), method, path)
                    text = (await response.content.read(200)).decode("utf-8", "replace")
                    if response.status < 500 and response.status != 429:
                        raise PaymentProviderError(f"NowPayments refused {method} {path}: {response.status} {text}",
                                                   status=response.status, detail=text)
                    problem = f"{response.status} {text}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            logger.warning("NowPayments %s %s attempt %d/%d failed: %s", method, path, attempt, attempts, problem)
            if attempt < attempts:
                await asyncio.sleep(backoff.next())
        raise PaymentProviderError(f"NowPayments {method} {path} failed {attempts} time(s): {problem}", transient=True)


def _json_object(body: bytes, method: str, path: str) -> dict:
    """A 2xx answer's JSON object; anything else (too long, not JSON, nested past reason, not an object) is a
    refusal of that one call, not an outage."""
    problem = None
    if len(body) > MAX_ANSWER_BYTES:
        problem = f"more than {MAX_ANSWER_BYTES} bytes"
    else:
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError) as exc:
            problem = f"not JSON ({exc.__class__.__name__})"
        else:
            if isinstance(answer, dict):
                return answer
            problem = "not a JSON object"
    raise PaymentProviderError(f"NowPayments answered {method} {path} with {problem}", detail=problem)


def _means_not_found(refusal: PaymentProviderError) -> bool:
    """NowPayments answers an unknown payment id with 404, or with 400 and a message saying so."""
    return refusal.status == 404 or (refusal.status == 400 and "not found" in refusal.detail.lower())
