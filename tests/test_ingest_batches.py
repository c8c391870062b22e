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


async def stored_ids(dsn: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as other:
        return {row[0] for row in await (await other.execute("SELECT webhook_id FROM notifications")).fetchall()}


async def test_a_one_statement_batch_commits_alone_and_leaves_the_connection_as_it_found_it(database_dsn):
    """``store_batch`` writes a batch of one statement in autocommit (no BEGIN and COMMIT round trips): it is
    committed when the call returns, and the connection goes back to the pool's mode."""
    batch = [notification(n, "fine") for n in range(5)]
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
    async with await psycopg.AsyncConnection.connect(database_dsn) as conn:  # not autocommit, as the pool's
        assert webhook_messages._one_statement(batch)
        assert await webhook_messages.store_batch(conn, batch) == {m.webhook_id for m in batch}
        assert conn.autocommit is False
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert await stored_ids(database_dsn) == {m.webhook_id for m in batch}  # seen from another session


async def test_a_batch_with_a_refused_body_stores_none_of_it_in_either_mode(database_dsn, monkeypatch):
    """One statement or several: PostgreSQL refusing one body (jsonb has no NUL) leaves nothing of the batch
    stored, and the connection usable in the pool's mode (the group committer then stores them one by one)."""
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
    refused = IncomingNotification("refused", '{"open_channel_id": "-1001", "payment_type": "x", "payment_data": {"n": "\\u0000"}}')
    one = [notification(n, "one") for n in range(3)] + [refused]
    monkeypatch.setattr(webhook_messages, "CHUNK_CHARACTERS", 150)
    several = [notification(n, "several") for n in range(10, 14)] + [refused]
    assert webhook_messages._one_statement(one[:1]) and not webhook_messages._one_statement(several)
    monkeypatch.setattr(webhook_messages, "CHUNK_CHARACTERS", 32 * 1024 * 1024)
    assert webhook_messages._one_statement(one)
    async with await psycopg.AsyncConnection.connect(database_dsn) as conn:
        for batch, chunk in ((one, 32 * 1024 * 1024), (several, 150)):
            monkeypatch.setattr(webhook_messages, "CHUNK_CHARACTERS", chunk)
            try:
                await webhook_messages.store_batch(conn, batch)
            except psycopg.DataError:
                pass
            else:
                raise AssertionError("PostgreSQL took a NUL in jsonb")
            assert conn.autocommit is False
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert await stored_ids(database_dsn) == set()
        assert await webhook_messages.store_batch(conn, one[:3]) == {m.webhook_id for m in one[:3]}
