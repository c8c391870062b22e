"""The signer file callers vendor: standalone (no package imports), and its signatures verify everywhere."""

from __future__ import annotations

import ast
import importlib.util
import shutil
from pathlib import Path

from standardwebhooks.webhooks import Webhook

import telepayd.security.webhook_signer as packaged
from telepayd.security.webhook_signature import WebhookVerifier


def test_the_file_imports_nothing_but_the_standard_library_and_nothing_relative():
    tree = ast.parse(Path(packaged.__file__).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(not isinstance(n, ast.ImportFrom) or n.level == 0 for n in imports)


def test_a_vendored_copy_signs_what_telepayd_and_the_official_library_accept(tmp_path):
    copy = tmp_path / "webhook_signer.py"
    shutil.copy(packaged.__file__, copy)
    spec = importlib.util.spec_from_file_location("webhook_signer", copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    secret = module.generate_secret()
    body = b'{"open_channel_id":"-100","payment_type":"donation","payment_data":{}}'
    headers = module.sign(secret, body)
    assert WebhookVerifier.from_secrets([secret]).verify(headers, body) == headers["webhook-id"]
    Webhook(secret).verify(body.decode(), headers)
