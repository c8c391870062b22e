"""The Flask design telepayd replaced, as the reference the signed-ingest target is a multiple of.

The signed-ingest target (6x, set when this was a Flask service that wrote nothing: about 1,000 req/s on
this machine then) is a multiple of this: one Flask route on Flask's own threaded server (``app.run``),
checking the Standard Webhooks signature and the timestamp, parsing the JSON body and answering, with no
database behind it. It is measured in the same run as the daemon, so the ratio holds on a machine that is
faster or slower today (on this shared 2-core VM the same plain aiohttp route served 29,409 req/s one day
and 12,000 another). Written without flask-cors or any other extension: the fastest reading of that
design, so the ratio is not flattered.

    python3 -m bench.flask_design PORT SECRETS_FILE
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import sys
import time
from pathlib import Path

from flask import Flask, jsonify, request

TOLERANCE_SECONDS = 300


def create(secrets: list[str]) -> Flask:
    keys = [base64.b64decode(secret.removeprefix("whsec_")) for secret in secrets]
    app = Flask(__name__)

    @app.post("/webhooks/notification")
    def notification():  # type: ignore[no-untyped-def]
        message_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return jsonify(error="stale_timestamp"), 401
        signed = f"{message_id}.{timestamp}.".encode() + request.get_data()
        expected = [base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys]
        offered = [part.partition(",")[2] for part in request.headers.get("webhook-signature", "").split()]
        if not any(hmac.compare_digest(mine, theirs) for mine in expected for theirs in offered):
            return jsonify(error="invalid_signature"), 401
        document = request.get_json(silent=True)
        if not isinstance(document, dict):
            return jsonify(error="invalid_json"), 400
        return jsonify(status="accepted", id=message_id), 202

    return app


if __name__ == "__main__":
    port, secrets_file = int(sys.argv[1]), Path(sys.argv[2])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    secrets = [line.strip() for line in secrets_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    create(secrets).run(host="127.0.0.1", port=port, threaded=True)
