"""Typed keys for the aiohttp application and request storage, declared once."""

from __future__ import annotations

from aiohttp import web

from .bot import TelegramBot
from .database import Database
from .ingest import GroupCommitter
from .metrics import Exporter
from .nowpayments import NowPaymentsClient
from .outbox import OutboxWorker
from .runtime import Runtime
from .security.client_address import IPAddress
from .supervisor import Supervisor
from .sweeper import Sweeper

runtime_key = web.AppKey("runtime", Runtime)
database_key = web.AppKey("database", Database)
committer_key = web.AppKey("committer", GroupCommitter)
bot_key = web.AppKey("bot", TelegramBot)
outbox_key = web.AppKey("outbox", OutboxWorker)
nowpayments_key = web.AppKey("nowpayments", NowPaymentsClient)
sweeper_key = web.AppKey("sweeper", Sweeper)
supervisor_key = web.AppKey("supervisor", Supervisor)
exporter_key = web.AppKey("exporter", Exporter)

client_key = web.RequestKey("client", IPAddress)  # type: ignore[arg-type]
body_key = web.RequestKey("body", bytes)
webhook_id_key = web.RequestKey("webhook_id", str)
