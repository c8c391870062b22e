"""The shipped nginx site and Caddyfile in front of the real daemon: a forged X-Forwarded-For never counts."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from telepayd.security.webhook_signature import sign
from tools.local_postgres import free_port

PACKAGING = Path(__file__).resolve().parent.parent / "packaging"
BODY = json.dumps({"open_channel_id": "-100", "payment_type": "donation", "payment_data": {"amount": "5"}}).encode()


def post_through(url: str, secret: str, forged: str) -> int:
    headers = {**sign(secret, BODY).as_dict(), "Content-Type": "application/json", "X-Forwarded-For": forged}
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url + "/webhooks/notification", data=BODY, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def wait_port(port: int) -> None:
    import socket

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


def proxied_daemon(config_files, start_daemon, allowed: str):
    config_files.settings = {"server": {"trusted_proxies": ["127.0.0.1/32", "::1/128"]}, "webhooks": {"allowed_ips": [allowed]}}
    config_files.write()
    return start_daemon(config_files)


@pytest.mark.skipif(not shutil.which("nginx") or not shutil.which("openssl"), reason="nginx not installed")
@pytest.mark.parametrize("allowed, expected", [("127.0.0.1/32", 202), ("203.0.113.5/32", 403)])
def test_nginx_site_overwrites_forwarded_for(config_files, start_daemon, tmp_path, allowed, expected):
    proxied_daemon(config_files, start_daemon, allowed)
    port = free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=telepay.example.com",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    site = (PACKAGING / "nginx" / "telepayd.conf").read_text()
    site = site.replace("127.0.0.1:8080", f"127.0.0.1:{config_files.port}")
    site = re.sub(r"listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl;", site)
    site = re.sub(r"\n\s*listen \[::\]:443 ssl http2;", "", site)
    site = site.split("server {\n    listen 80;")[0]  # the port-80 redirect is not needed here
    site = site.replace("/etc/letsencrypt/live/telepay.example.com/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/telepay.example.com/privkey.pem", str(tmp_path / "key.pem"))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(f"""
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    nginx = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"])
    try:
        wait_port(port)
        # The client claims to be 203.0.113.5; nginx overwrites the header with the real peer (127.0.0.1).
        assert post_through(f"https://127.0.0.1:{port}", config_files.webhook_secrets[0], "203.0.113.5") == expected
    finally:
        nginx.terminate()
        nginx.wait(10)


@pytest.mark.skipif(not shutil.which("caddy"), reason="caddy not installed")
@pytest.mark.parametrize("allowed, expected", [("127.0.0.1/32", 202), ("203.0.113.5/32", 403)])
def test_caddyfile_overwrites_forwarded_for(config_files, start_daemon, tmp_path, allowed, expected):
    proxied_daemon(config_files, start_daemon, allowed)
    port = free_port()
    caddyfile = (PACKAGING / "caddy" / "Caddyfile").read_text()
    caddyfile = caddyfile.replace("127.0.0.1:8080", f"127.0.0.1:{config_files.port}")
    # Plain HTTP on loopback for the test (no certificates); the proxying is the shipped one.
    caddyfile = caddyfile.replace("\n{\n", "\n{\n\tadmin off\n\tauto_https off\n", 1)  # into its global options
    caddyfile = caddyfile.replace("telepay.example.com {", f"http://127.0.0.1:{port} {{")
    (tmp_path / "Caddyfile").write_text(caddyfile)
    caddy = subprocess.Popen(["caddy", "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
                             env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
                                  "PATH": "/usr/bin:/bin"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        assert post_through(f"http://127.0.0.1:{port}", config_files.webhook_secrets[0], "203.0.113.5") == expected
    finally:
        caddy.terminate()
        caddy.wait(10)
