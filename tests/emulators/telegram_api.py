"""An emulator of the Telegram Bot API, speaking its wire format: ``POST /bot<token>/<method>``.

It answers the methods telepayd uses, records every call, and can be told to fail: answer 429 with
``retry_after``, 403, 400 or 5xx for a method a number of times or for a while.

Telegram Stars: ``createInvoiceLink`` and ``sendInvoice`` in XTR, ``answerPreCheckoutQuery``,
``refundStarPayment``, ``editUserStarSubscription`` and ``getStarTransactions``, with the checks Telegram makes;
tests make charges (what Telegram does once a user paid) over ``/_emulator/telegram/stars/...``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SUBSCRIPTION_PERIOD = 2592000  # the only subscription period Telegram accepts: 30 days
MAX_STARS = 10000  # the most Stars one invoice may ask
# Parameters that are strings on the wire: PTB posts them as they are, so they must not be JSON-decoded ("42").
TEXT_PARAMS = frozenset({"title", "description", "payload", "currency", "provider_token", "start_parameter",
                         "pre_checkout_query_id", "error_message", "telegram_payment_charge_id"})

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "TelePay", "username": "telepay_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}


@dataclass
class Failure:
    method: str  # "*" for every method
    status: int
    description: str
    retry_after: int | None = None
    remaining: int | None = None  # None: until `until`
    until: float | None = None


@dataclass
class TelegramState:
    calls: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    message_ids: itertools.count = field(default_factory=lambda: itertools.count(100))
    # Telegram's limits, enforced when set: {"per_second": 30, "per_chat_per_second": 1, "per_group_per_minute": 20}
    limits: dict[str, float] | None = None
    sends: list[tuple[float, int]] = field(default_factory=list)  # (time, chat) of accepted sends
    editable: set[tuple[int, int]] = field(default_factory=set)  # (chat, message) that exist
    slow: dict[str, float] = field(default_factory=dict)  # method -> seconds to wait before answering
    answered: dict[str, asyncio.Event] = field(default_factory=dict)  # callback_query_id -> answered
    # Telegram Stars
    invoice_links: dict[str, dict[str, Any]] = field(default_factory=dict)  # link (or "message:chat:id") -> invoice params
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)  # telegram_payment_charge_id -> the charge
    star_transactions: list[dict[str, Any]] = field(default_factory=list)  # StarTransaction objects, oldest first
    pre_checkouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # pre_checkout_query_id -> the answer's params
    pre_checkout_answered: dict[str, asyncio.Event] = field(default_factory=dict)  # pre_checkout_query_id -> answered

    def over_limit(self, chat_id: int, now: float) -> int | None:
        """The retry_after Telegram would answer, or None when this send is within the limits."""
        if not self.limits:
            return None
        recent = [(t, c) for t, c in self.sends if now - t < 60]
        self.sends = recent
        if sum(1 for t, _ in recent if now - t < 1) >= self.limits.get("per_second", 30):
            return 1
        if chat_id < 0:
            if sum(1 for _, c in recent if c == chat_id) >= self.limits.get("per_group_per_minute", 20):
                return 60
        elif any(c == chat_id and now - t < 1 / self.limits.get("per_chat_per_second", 1) for t, c in recent):
            return 1
        return None

    def failure_for(self, method: str) -> Failure | None:
        now = time.monotonic()
        for failure in self.failures:
            if failure.method not in (method, "*"):
                continue
            if failure.until is not None and now > failure.until:
                continue
            if failure.remaining is not None:
                if failure.remaining <= 0:
                    continue
                failure.remaining -= 1
            return failure
        return None


class BadRequest(Exception):
    """Telegram's 400 answer to a method called wrongly; the argument is its description."""


def _params(raw: dict[str, str]) -> dict[str, Any]:
    """PTB posts form fields whose non-string values are JSON-encoded (string ones as they are)."""
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in TEXT_PARAMS:
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            params[key] = value
    return params


def _message(chat_id: Any, text: str | None, message_id: int, reply_markup: Any = None) -> dict[str, Any]:
    message = {"message_id": message_id, "date": int(time.time()), "chat": {"id": int(chat_id), "type": "private"},
               "from": BOT_USER, "text": text or ""}
    if reply_markup:
        message["reply_markup"] = reply_markup
    return message


def _star_user(user_id: int, username: str) -> dict[str, Any]:
    return {"id": int(user_id), "is_bot": False, "first_name": username.title(), "username": username}


def _check_invoice(p: dict[str, Any], *, subscription: bool) -> None:
    """Telegram's checks of an invoice in Stars (``subscription``: a link may renew every 30 days)."""
    if p.get("currency") != "XTR":
        raise BadRequest("Bad Request: CURRENCY_INVALID")
    if p.get("provider_token"):
        raise BadRequest("Bad Request: PAYMENT_PROVIDER_INVALID")
    if not 1 <= len(str(p.get("title") or "")) <= 32:
        raise BadRequest("Bad Request: INVOICE_TITLE_INVALID")
    if not 1 <= len(str(p.get("description") or "")) <= 255:
        raise BadRequest("Bad Request: INVOICE_DESCRIPTION_INVALID")
    if not isinstance(p.get("payload"), str) or not 1 <= len(p["payload"].encode()) <= 128:
        raise BadRequest("Bad Request: INVOICE_PAYLOAD_INVALID")
    prices = p.get("prices")
    if not isinstance(prices, list) or len(prices) != 1 or not isinstance(prices[0], dict) or "label" not in prices[0]:
        raise BadRequest("Bad Request: STARS_INVOICE_INVALID")
    amount = prices[0].get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_STARS:
        raise BadRequest("Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")
    period = p.get("subscription_period")
    if period is not None and (not subscription or period != SUBSCRIPTION_PERIOD):
        raise BadRequest("Bad Request: SUBSCRIPTION_PERIOD_INVALID")


def _invoice(p: dict[str, Any]) -> dict[str, Any]:
    """What the emulator remembers of an invoice: the params a payment needs."""
    return {key: p.get(key) for key in ("title", "description", "payload", "currency", "prices", "subscription_period")}


def _create_invoice_link(state: TelegramState, p: dict[str, Any]) -> str:
    _check_invoice(p, subscription=True)
    link = "https://t.me/$" + secrets.token_urlsafe(16)
    state.invoice_links[link] = _invoice(p)
    return link


def _send_invoice(state: TelegramState, p: dict[str, Any]) -> dict[str, Any]:
    _check_invoice(p, subscription=False)
    message = _message(p["chat_id"], None, next(state.message_ids), p.get("reply_markup"))
    del message["text"]
    message["invoice"] = {"title": p["title"], "description": p["description"],
                          "start_parameter": p.get("start_parameter") or "", "currency": p["currency"],
                          "total_amount": p["prices"][0]["amount"]}
    state.invoice_links[f"message:{message['chat']['id']}:{message['message_id']}"] = _invoice(p)
    return message


def _answer_pre_checkout_query(state: TelegramState, p: dict[str, Any]) -> bool:
    query_id = p.get("pre_checkout_query_id")
    if not query_id:
        raise BadRequest("Bad Request: QUERY_ID_INVALID")
    if not isinstance(p.get("ok"), bool):
        raise BadRequest('Bad Request: parameter "ok" is required')
    if not p["ok"] and not p.get("error_message"):
        raise BadRequest("Bad Request: ERROR_MESSAGE_EMPTY")
    state.pre_checkouts[str(query_id)] = {"ok": p["ok"], "error_message": p.get("error_message")}
    state.pre_checkout_answered.setdefault(str(query_id), asyncio.Event()).set()
    return True


def _payer_charge(state: TelegramState, p: dict[str, Any], unknown: str) -> dict[str, Any]:
    """The charge ``telegram_payment_charge_id`` of ``user_id``; 400 ``unknown`` or USER_ID_INVALID otherwise."""
    charge = state.charges.get(str(p.get("telegram_payment_charge_id")))
    if charge is None:
        raise BadRequest(f"Bad Request: {unknown}")
    try:
        user_id = int(p.get("user_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRequest("Bad Request: USER_ID_INVALID") from None
    if user_id != charge["user_id"]:
        raise BadRequest("Bad Request: USER_ID_INVALID")
    return charge


def _refund_star_payment(state: TelegramState, p: dict[str, Any]) -> bool:
    charge = _payer_charge(state, p, "CHARGE_NOT_FOUND")
    if charge["refunded"]:
        raise BadRequest("Bad Request: CHARGE_ALREADY_REFUNDED")
    charge["refunded"] = True
    state.star_transactions.append({
        "id": p["telegram_payment_charge_id"], "amount": charge["amount"], "date": int(time.time()),
        "receiver": {"type": "user", "transaction_type": "invoice_payment", "user": charge["user"],
                     "invoice_payload": charge["payload"]},
    })
    return True


def _edit_user_star_subscription(state: TelegramState, p: dict[str, Any]) -> bool:
    charge = _payer_charge(state, p, "CHARGE_ID_INVALID")
    if charge["period"] is None:
        raise BadRequest("Bad Request: CHARGE_ID_INVALID")
    if not isinstance(p.get("is_canceled"), bool):
        raise BadRequest('Bad Request: parameter "is_canceled" is required')
    charge["canceled"] = p["is_canceled"]
    return True


def _get_star_transactions(state: TelegramState, p: dict[str, Any]) -> dict[str, Any]:
    offset, limit = p.get("offset", 0), p.get("limit", 100)
    if not isinstance(offset, int) or offset < 0:
        raise BadRequest("Bad Request: OFFSET_INVALID")
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise BadRequest("Bad Request: LIMIT_INVALID")
    return {"transactions": state.star_transactions[offset:offset + limit]}


STARS_METHODS = {"createInvoiceLink": _create_invoice_link, "sendInvoice": _send_invoice,
                 "answerPreCheckoutQuery": _answer_pre_checkout_query, "refundStarPayment": _refund_star_payment,
                 "editUserStarSubscription": _edit_user_star_subscription,
                 "getStarTransactions": _get_star_transactions}


def _result(state: TelegramState, method: str, p: dict[str, Any]) -> Any:
    """The method's result; None for a method the emulator does not know; raises BadRequest."""
    if method in STARS_METHODS:
        return STARS_METHODS[method](state, p)
    if method in ("getMe",):
        return BOT_USER
    if method == "sendMessage":
        return _message(p["chat_id"], p.get("text"), next(state.message_ids), p.get("reply_markup"))
    if method in ("editMessageText", "editMessageReplyMarkup"):
        return _message(p.get("chat_id", 0), p.get("text"), int(p.get("message_id", 1)), p.get("reply_markup"))
    if method == "createChatInviteLink":
        return {"invite_link": f"https://t.me/+{secrets.token_urlsafe(12)}", "creator": BOT_USER,
                "creates_join_request": bool(p.get("creates_join_request")), "is_primary": False, "is_revoked": False,
                "name": p.get("name"), "expire_date": p.get("expire_date")}
    if method == "revokeChatInviteLink":
        return {"invite_link": p.get("invite_link"), "creator": BOT_USER, "creates_join_request": True,
                "is_primary": False, "is_revoked": True}
    if method in ("answerCallbackQuery", "approveChatJoinRequest", "declineChatJoinRequest", "unbanChatMember",
                  "banChatMember", "setWebhook", "deleteWebhook", "setMyCommands", "setMyDescription", "deleteMessage"):
        return True
    if method == "getUpdates":
        return []
    if method == "getWebhookInfo":
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
    return None


async def bot_method(request: web.Request) -> web.Response:
    state: TelegramState = request.app["telegram"]
    method = request.match_info["method"]
    if request.content_type == "application/json":
        params = await request.json()
    else:
        params = _params(dict(await request.post()))
    call = {"method": method, "params": params, "token": request.match_info["token"], "at": time.time(), "ok": False}
    state.calls.append(call)
    delay = state.slow.get(method, state.slow.get("*", 0.0))
    if delay:
        await asyncio.sleep(delay)
    failure = state.failure_for(method)
    sends = method in ("sendMessage", "editMessageText")
    if failure is None and sends:
        retry_after = state.over_limit(int(params.get("chat_id", 0)), time.monotonic())
        if retry_after is not None:
            failure = Failure(method, 429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
    if failure is None and method == "editMessageText" and state.limits is not None:
        if (int(params.get("chat_id", 0)), int(params.get("message_id", 0))) not in state.editable:
            failure = Failure(method, 400, "Bad Request: message to edit not found")
    if failure is not None:
        call["status"] = failure.status
        answer: dict[str, Any] = {"ok": False, "error_code": failure.status, "description": failure.description}
        if failure.retry_after is not None:
            answer["parameters"] = {"retry_after": failure.retry_after}
        return web.json_response(answer, status=failure.status)
    try:
        result = _result(state, method, params)
    except BadRequest as exc:
        call["status"] = 400
        return web.json_response({"ok": False, "error_code": 400, "description": str(exc)}, status=400)
    if result is None:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found: method not found"}, status=404)
    call["ok"] = True
    if method == "answerCallbackQuery":
        state.answered.setdefault(str(params.get("callback_query_id")), asyncio.Event()).set()
    if isinstance(result, dict) and "message_id" in result:
        call["message_id"] = result["message_id"]
        state.editable.add((int(result["chat"]["id"]), int(result["message_id"])))
    if sends:
        state.sends.append((time.monotonic(), int(params.get("chat_id", 0))))
    return web.json_response({"ok": True, "result": result})


async def control_calls(request: web.Request) -> web.Response:
    state: TelegramState = request.app["telegram"]
    method = request.query.get("method")
    return web.json_response([c for c in state.calls if method is None or c["method"] == method])


async def control_fail(request: web.Request) -> web.Response:
    body = await request.json()
    seconds = body.get("seconds")
    request.app["telegram"].failures.append(Failure(
        method=body.get("method", "*"), status=int(body["status"]), description=body.get("description", "Error"),
        retry_after=body.get("retry_after"), remaining=body.get("count"),
        until=time.monotonic() + seconds if seconds is not None else None,
    ))
    return web.json_response({"ok": True})


async def control_answered(request: web.Request) -> web.Response:
    """Wait (at most ``timeout`` seconds) until the bot answered the callback query ``id``; forget it then."""
    state: TelegramState = request.app["telegram"]
    query_id = request.match_info["id"]
    event = state.answered.setdefault(query_id, asyncio.Event())
    try:
        await asyncio.wait_for(event.wait(), float(request.query.get("timeout", "10")))
    except TimeoutError:
        return web.json_response({"answered": False})
    finally:
        state.answered.pop(query_id, None)
    return web.json_response({"answered": True})


async def control_slow(request: web.Request) -> web.Response:
    """``{"method": "sendMessage", "seconds": 3}``: answer that method (``*``: every method) that much later."""
    body = await request.json()
    request.app["telegram"].slow[body.get("method", "*")] = float(body["seconds"])
    return web.json_response({"ok": True})


async def control_limits(request: web.Request) -> web.Response:
    request.app["telegram"].limits = (await request.json()) or None
    return web.json_response({"ok": True})


async def control_star_links(request: web.Request) -> web.Response:
    """The invoices the bot created: link (or ``message:<chat>:<id>``) -> title, payload, currency, prices..."""
    return web.json_response(request.app["telegram"].invoice_links)


async def control_star_charge(request: web.Request) -> web.Response:
    """A user paid: ``{"user_id", "payload", "amount", "period"?, "username"?}`` -> a new charge and its transaction.

    Answers ``{"charge_id", "subscription_expiration_date"}`` (the latter null unless ``period``)."""
    state: TelegramState = request.app["telegram"]
    body = await request.json()
    period = body.get("period")
    now = int(time.time())
    charge_id = "stx" + secrets.token_urlsafe(60)
    user = _star_user(body["user_id"], body.get("username") or "alice")
    state.charges[charge_id] = {"user_id": user["id"], "user": user, "amount": int(body["amount"]),
                                "payload": body["payload"], "period": period, "refunded": False, "canceled": False,
                                "date": now}
    source = {"type": "user", "transaction_type": "invoice_payment", "user": user, "invoice_payload": body["payload"]}
    if period is not None:
        source["subscription_period"] = int(period)
    state.star_transactions.append({"id": charge_id, "amount": int(body["amount"]), "date": now, "source": source})
    return web.json_response({"charge_id": charge_id,
                              "subscription_expiration_date": now + int(period) if period is not None else None})


async def control_precheckout(request: web.Request) -> web.Response:
    """Wait (at most ``timeout`` seconds) until the bot answered the pre-checkout query ``id``; tell the answer."""
    state: TelegramState = request.app["telegram"]
    query_id = request.match_info["id"]
    if query_id not in state.pre_checkouts:
        event = state.pre_checkout_answered.setdefault(query_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), float(request.query.get("timeout", "10")))
        except TimeoutError:
            return web.json_response({"answered": False})
        finally:
            state.pre_checkout_answered.pop(query_id, None)
    answer = state.pre_checkouts[query_id]
    return web.json_response({"answered": True, "ok": answer["ok"], "error_message": answer["error_message"]})


async def control_star_charges(request: web.Request) -> web.Response:
    """Every charge: id -> user_id, amount, payload, period, refunded, canceled, date."""
    charges = request.app["telegram"].charges
    return web.json_response({key: {k: v for k, v in charge.items() if k != "user"} for key, charge in charges.items()})


def add_routes(app: web.Application) -> None:
    app["telegram"] = TelegramState()
    app.router.add_get("/_emulator/telegram/stars/links", control_star_links)
    app.router.add_post("/_emulator/telegram/stars/charge", control_star_charge)
    app.router.add_get("/_emulator/telegram/stars/precheckout/{id}", control_precheckout)
    app.router.add_get("/_emulator/telegram/stars/charges", control_star_charges)
    app.router.add_post("/_emulator/telegram/limits", control_limits)
    app.router.add_post("/_emulator/telegram/slow", control_slow)
    app.router.add_get("/_emulator/telegram/answered/{id}", control_answered)
    app.router.add_post("/bot{token}/{method}", bot_method)
    app.router.add_get("/_emulator/telegram/calls", control_calls)
    app.router.add_post("/_emulator/telegram/fail", control_fail)
