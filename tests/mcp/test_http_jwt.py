"""JWTs as bearer tokens on `mender mcp-proxy --listen` (`--jwt-jwks`,
`--jwt-issuer`, `--jwt-audience`): a token signed by a key of the JWKS
(a file, or a URL), from that issuer, for that audience, not expired, is
let in; any other is a 401 with `WWW-Authenticate` saying why, and never
reaches the upstream. Keys and tokens are made here with PyJWT and
`cryptography` (both in the test venv, as the `mcp` client's own
dependencies)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import everything, free_port, mender_bin, mender_status, mender_toml, text
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

pytestmark = pytest.mark.anyio

ISSUER = "https://issuer.mender.test"
AUDIENCE = "mender-gateway-test"
KID = "test-key-1"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(key: rsa.RSAPrivateKey, kid: str = KID) -> str:
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return json.dumps({"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]})


def token(key: Any, kid: str = KID, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "agent-7", "iat": now, "exp": now + 300, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers={"kid": kid})


@contextmanager
def front(workdir: Path, jwks_source: str) -> Iterator[tuple[str, Path, Path]]:
    """The gateway with JWT admission (and no static tokens); yields its
    URL, config and log."""
    config = mender_toml(workdir, {"everything": everything()})
    port = free_port()
    log = workdir / "front.log"
    env = {k: v for k, v in os.environ.items() if k != "MENDER_TOKENS"}
    command = [
        mender_bin(), "mcp-proxy", "--config", str(config), "--listen", f"127.0.0.1:{port}",
        "--jwt-jwks", jwks_source, "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
    ]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/mcp", timeout=1)
            except urllib.error.HTTPError:
                break  # it answers (401: no token)
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", config, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"--- mender mcp-proxy log ---\n{log.read_text(errors='replace')[-20000:]}")


def initialize(url: str, bearer: str | None) -> tuple[int, str]:
    """One `initialize` POST: its status and `WWW-Authenticate`."""
    body = json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("WWW-Authenticate", "")


async def call_echo(url: str, bearer: str) -> str:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {bearer}"})
    async with Client(streamable_http_client(url, http_client=http), cache=None, mode="legacy") as client:
        return text(await client.call_tool("echo", {"message": "signed in"}))


async def test_jwts_from_a_jwks_file(workdir: Path) -> None:
    key, stranger = new_key(), new_key()
    keys = workdir / "jwks.json"
    keys.write_text(jwks(key))
    with front(workdir, str(keys)) as (url, config, log):
        refused = {
            "none": None,
            "expired": token(key, exp=int(time.time()) - 3600),
            "another audience": token(key, aud="someone-else"),
            "another issuer": token(key, iss="https://evil.test"),
            "no exp": token(key, exp=None),
            "another key": token(stranger),
            "an unknown kid": token(key, kid="not-there"),
            # HS256 with the public key as the secret: the classic confusion.
            "hmac": jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300},
                               "some-shared-secret-of-32-bytes-or-more", algorithm="HS256", headers={"kid": KID}),
            "not a jwt": "just-a-string-token",
        }
        for why, bearer in refused.items():
            status, challenge = initialize(url, bearer)
            assert status == 401, (why, status)
            want = "invalid_request" if bearer is None else "invalid_token"
            assert challenge.startswith("Bearer") and f'error="{want}"' in challenge, (why, challenge)
        # None of them reached the upstream: it has not even started.
        [up] = mender_status(config)["upstreams"]
        assert up["pid"] is None and up["calls"] == 0, up

        good = token(key)
        assert await call_echo(url, good) == "Echo: signed in"
        # The reason is given, the token never.
        status, challenge = initialize(url, token(key, exp=int(time.time()) - 3600))
        assert "xpired" in challenge, challenge
        assert good not in log.read_text()


@contextmanager
def serving(body: str) -> Iterator[tuple[str, list[int]]]:
    """`body` served at http://127.0.0.1:PORT/jwks.json; yields the URL and
    a list that grows by one per request."""
    hits: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            hits.append(1)
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", hits
    finally:
        server.shutdown()
        server.server_close()


async def test_jwts_from_a_jwks_url(workdir: Path) -> None:
    key = new_key()
    with serving(jwks(key)) as (jwks_url, hits):
        with front(workdir, jwks_url) as (url, _, _):
            assert hits == [1], "fetched once at start"
            assert await call_echo(url, token(key)) == "Echo: signed in"
            # A token naming an unknown key may ask the server again, but
            # not within a minute of the last fetch.
            assert initialize(url, token(key, kid="rotated"))[0] == 401
            assert hits == [1], hits


def test_a_jwks_that_cannot_be_read_stops_the_start(workdir: Path) -> None:
    config = mender_toml(workdir, {"everything": everything()})
    (workdir / "empty.json").write_text('{"keys": []}')
    for source, says in [(str(workdir / "missing.json"), "missing.json"), (str(workdir / "empty.json"), "no keys")]:
        out = subprocess.run(
            [mender_bin(), "mcp-proxy", "--config", str(config), "--listen", f"127.0.0.1:{free_port()}",
             "--jwt-jwks", source, "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 2 and says in out.stderr, out
