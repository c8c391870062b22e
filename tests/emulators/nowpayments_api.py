"""An emulator of the NowPayments API: ``POST /v1/invoice``, ``GET /v1/payment/{id}``, and signed IPN
callbacks sent on request.

IPNs are signed the way NowPayments documents it: HMAC-SHA512 over the JSON with keys sorted (our bodies
are flat, so the documented JavaScript form and a plain sorted dump agree), computed here independently of
telepayd's verifier.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

API_KEY = "NP-TEST-KEY"
IPN_SECRET = "ipn-secret-1"


@dataclass
class NowPaymentsState:
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)  # by order_id
    ids: itertools.count = field(default_factory=lambda: itertools.count(4322917000))
    payment_ids: itertools.count = field(default_factory=lambda: itertools.count(5077125000))
    fail_invoices: int = 0
    payments: dict[int, dict[str, Any]] = field(default_factory=dict)  # what GET /v1/payment/{id} answers
    lookups: list[int] = field(default_factory=list)  # payment ids asked for, in order
    fail_lookups: int = 0  # the next N lookups are answered with lookup_failure (-1: all of them)
    lookup_failure: int = 503
    failing_payments: dict[int, int] = field(default_factory=dict)  # payment id -> the status its lookups get


def sign_ipn(body: bytes, secret: str = IPN_SECRET) -> str:
    sorted_text = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(secret.encode(), sorted_text.encode(), hashlib.sha512).hexdigest()


async def create_invoice(request: web.Request) -> web.Response:
    state: NowPaymentsState = request.app["nowpayments"]
    if request.headers.get("x-api-key") != API_KEY:
        return web.json_response({"status": False, "statusCode": 401, "code": "INVALID_API_KEY", "message": "Invalid api key"}, status=401)
    if state.fail_invoices:
        state.fail_invoices -= 1
        return web.json_response({"status": False, "statusCode": 500, "message": "Internal server error"}, status=500)
    body = await request.json()
    invoice_id = str(next(state.ids))
    invoice = {
        "id": invoice_id, "token_id": "tok", "order_id": body["order_id"], "order_description": body.get("order_description"),
        "price_amount": str(body["price_amount"]), "price_currency": body["price_currency"], "pay_currency": None,
        "ipn_callback_url": body.get("ipn_callback_url"), "invoice_url": f"https://nowpayments.io/payment/?iid={invoice_id}",
        "success_url": body.get("success_url"), "cancel_url": None, "created_at": "2026-11-26T08:00:00.000Z",
        "updated_at": "2026-11-26T08:00:00.000Z", "is_fixed_rate": False, "is_fee_paid_by_user": False,
        "_price_number": body["price_amount"],
    }
    state.invoices[body["order_id"]] = invoice
    public = {k: v for k, v in invoice.items() if not k.startswith("_")}
    return web.json_response(public)


def ipn_body(invoice: dict[str, Any], status: str, payment_id: int, **overrides: Any) -> bytes:
    document: dict[str, Any] = {
        "payment_id": payment_id, "invoice_id": int(invoice["id"]), "payment_status": status,
        "pay_address": "TQ2xEmulatorAddress", "price_amount": invoice["_price_number"], "price_currency": invoice["price_currency"],
        "pay_amount": 25.4, "actually_paid": 25.4 if status == "finished" else 0, "actually_paid_at_fiat": 0,
        "pay_currency": "usdttrc20", "order_id": invoice["order_id"], "order_description": invoice["order_description"],
        "purchase_id": str(payment_id + 1000), "created_at": "2026-11-26T08:00:00.000Z",
        "updated_at": "2026-11-26T08:10:00.000Z", "outcome_amount": 24.9, "outcome_currency": "usdttrc20",
    }
    document.update(overrides)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _unauthorised() -> web.Response:
    return web.json_response({"status": False, "statusCode": 401, "code": "INVALID_API_KEY", "message": "Invalid api key"}, status=401)


async def get_payment(request: web.Request) -> web.Response:
    """The payment as NowPayments has it now: what the last IPN (sent or only set) said."""
    state: NowPaymentsState = request.app["nowpayments"]
    if request.headers.get("x-api-key") != API_KEY:
        return _unauthorised()
    text = request.match_info["payment_id"]
    if not text.isascii() or not text.isdigit():
        return web.json_response({"status": False, "statusCode": 400, "code": "INVALID_REQUEST_PARAMS",
                                  "message": "Payment id must be a number"}, status=400)
    state.lookups.append(int(text))
    if state.fail_lookups:
        state.fail_lookups -= state.fail_lookups > 0
        status = state.lookup_failure
        return web.json_response({"status": False, "statusCode": status, "message": "Too many requests" if status == 429
                                  else "Internal server error"}, status=status)
    if int(text) in state.failing_payments:
        status = state.failing_payments[int(text)]
        return web.json_response({"status": False, "statusCode": status, "message": "Error"}, status=status)
    payment = state.payments.get(int(text))
    if payment is None:
        return web.json_response({"status": False, "statusCode": 404, "code": "PAYMENT_NOT_FOUND",
                                  "message": "Payment not found"}, status=404)
    return web.json_response(payment)


def _record_payment(state: NowPaymentsState, body: dict[str, Any]) -> tuple[int, bytes]:
    invoice = state.invoices[body["order_id"]]
    payment_id = body.get("payment_id") or next(state.payment_ids)
    raw = ipn_body(invoice, body["status"], payment_id, **body.get("overrides", {}))
    state.payments[payment_id] = json.loads(raw)
    return payment_id, raw


async def control_payment(request: web.Request) -> web.Response:
    """Set a payment's status at "NowPayments" without sending an IPN (an IPN that never arrived)."""
    payment_id, _ = _record_payment(request.app["nowpayments"], await request.json())
    return web.json_response({"payment_id": payment_id})


async def control_fail_lookups(request: web.Request) -> web.Response:
    """Answer the next ``count`` payment lookups (-1: all, until reset) with ``status`` (default 503)."""
    state: NowPaymentsState = request.app["nowpayments"]
    body = await request.json()
    state.fail_lookups, state.lookup_failure = int(body["count"]), int(body.get("status", 503))
    return web.json_response({"ok": True})


async def control_fail_payment(request: web.Request) -> web.Response:
    """Answer every lookup of one payment with ``status`` (0: answer it again)."""
    state: NowPaymentsState = request.app["nowpayments"]
    body = await request.json()
    if body["status"]:
        state.failing_payments[int(body["payment_id"])] = int(body["status"])
    else:
        state.failing_payments.pop(int(body["payment_id"]), None)
    return web.json_response({"ok": True})


async def control_lookups(request: web.Request) -> web.Response:
    return web.json_response(request.app["nowpayments"].lookups)


async def control_ipn(request: web.Request) -> web.Response:
    """Send a signed IPN for an order to its ipn_callback_url; answers what the daemon answered."""
    state: NowPaymentsState = request.app["nowpayments"]
    body = await request.json()
    invoice = state.invoices[body["order_id"]]
    payment_id, raw = _record_payment(state, body)
    signature = body.get("signature") or sign_ipn(raw)
    async with aiohttp.ClientSession() as session:
        async with session.post(invoice["ipn_callback_url"], data=raw,
                                headers={"Content-Type": "application/json", "x-nowpayments-sig": signature}) as response:
            return web.json_response({"status": response.status, "answer": await response.json(content_type=None),
                                      "payment_id": payment_id, "at": time.time()})


async def control_invoices(request: web.Request) -> web.Response:
    state: NowPaymentsState = request.app["nowpayments"]
    return web.json_response({k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in state.invoices.items()})


async def control_fail_invoices(request: web.Request) -> web.Response:
    request.app["nowpayments"].fail_invoices = int((await request.json())["count"])
    return web.json_response({"ok": True})


def add_routes(app: web.Application) -> None:
    app["nowpayments"] = NowPaymentsState()
    app.router.add_post("/v1/invoice", create_invoice)
    app.router.add_get("/v1/payment/{payment_id}", get_payment)
    app.router.add_post("/_emulator/nowpayments/payment", control_payment)
    app.router.add_post("/_emulator/nowpayments/fail-lookups", control_fail_lookups)
    app.router.add_get("/_emulator/nowpayments/lookups", control_lookups)
    app.router.add_post("/_emulator/nowpayments/fail-payment", control_fail_payment)
    app.router.add_post("/_emulator/nowpayments/ipn", control_ipn)
    app.router.add_get("/_emulator/nowpayments/invoices", control_invoices)
    app.router.add_post("/_emulator/nowpayments/fail-invoices", control_fail_invoices)
