"""A group commit's notifications go to PostgreSQL as JSON arrays matched by position: each body is stored
under its own webhook-id, whatever it holds, and a batch too big for one jsonb value is split (found in
review: 260 bodies of 1 MB made every sender of the batch get 503, for ever)."""

from __future__ import annotations

import json

import psycopg

from telepayd.store import schema, webhook_messages
from telepayd.store.webhook_messages import IncomingNotification


def notification(n: int, note: str) -> IncomingNotification:
    body = json.dumps({"open_channel_id": f"-100{n}", "payment_type": "subscription",
                       "payment_data": {"user_id": n, "note": note}}, indent=n % 3 or None)
    return IncomingNotification(f'id "{n}" \\ {n}', body)


async def test_each_body_is_stored_under_its_own_id_across_chunks(database_dsn, monkeypatch):
    monkeypatch.setattr(webhook_messages, "CHUNK_CHARACTERS", 300)
    batch = [notification(n, note) for n, note in enumerate(
        ['"]},{"x":', "x" * 400, "", "\\u0041 ], [", "plain", "y" * 250, "z"])]
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
        assert len(webhook_messages._chunks(batch)) > 2
        async with conn.transaction():
            accepted = await webhook_messages.insert_batch(conn, batch)
        async with conn.transaction():  # the same again: nothing new
            assert await webhook_messages.insert_batch(conn, batch[2:4]) == set()
        rows = await (await conn.execute(
            "SELECT webhook_id, open_channel_id, payment_data->>'note' FROM notifications ORDER BY id")).fetchall()
    assert accepted == {m.webhook_id for m in batch}
    assert sorted(rows) == sorted((m.webhook_id, json.loads(m.body)["open_channel_id"], json.loads(m.body)["payment_data"]["note"])
                                  for m in batch)
