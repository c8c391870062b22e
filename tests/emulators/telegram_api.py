"""An emulator of the Telegram Bot API, speaking its wire format: ``POST /bot<token>/<method>``.

It answers the methods telepayd uses, records every call, and can be told to fail: answer 429 with
``retry_after``, 403, 400 or 5xx for a method a number of times or for a while.
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


def _params(raw: dict[str, str]) -> dict[str, Any]:
    """PTB posts form fields whose non-string values are JSON-encoded."""
    params: dict[str, Any] = {}
    for key, value in raw.items():
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


def _result(state: TelegramState, method: str, p: dict[str, Any]) -> Any:
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
                  "banChatMember", "setWebhook", "deleteWebhook", "setMyCommands", "deleteMessage"):
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
    result = _result(state, method, params)
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


def add_routes(app: web.Application) -> None:
    app["telegram"] = TelegramState()
    app.router.add_post("/_emulator/telegram/limits", control_limits)
    app.router.add_post("/_emulator/telegram/slow", control_slow)
    app.router.add_get("/_emulator/telegram/answered/{id}", control_answered)
    app.router.add_post("/bot{token}/{method}", bot_method)
    app.router.add_get("/_emulator/telegram/calls", control_calls)
    app.router.add_post("/_emulator/telegram/fail", control_fail)
