"""OAuth for a remote upstream (`[mcp.servers.NAME.oauth]`): server-everything
over Streamable HTTP behind a bearer check (oauth_server.protect on the
http_proxy.FaultProxy in front of it), tokens from a small authorization
server on 127.0.0.1 (oauth_server.AuthServer).

Discovery starts at the server's 401 (`resource_metadata`); client
credentials buy a token at connect and a new one when the server refuses
it; the authorization-code grant signs in with `mender login` (PKCE, a
loopback redirect), refreshes with a rotated refresh token, and says to
run `mender login` again when the refresh token is refused; a 403
`insufficient_scope` steps up. No token ever reaches the gateway's log or
status."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import mender_bin, mender_toml, proxy, text
from http_proxy import FaultProxy
from oauth_server import SHOW_TOKEN, AuthServer, protect
from test_remote import PIPELINE, HttpEverything

pytestmark = pytest.mark.anyio

# Debug logs from every crate: a token would leak here first.
LOUD = {"MENDER_LOG": "debug,rmcp=debug,reqwest=debug"}


@pytest.fixture
def protected() -> Iterator[tuple[AuthServer, FaultProxy]]:
    server = HttpEverything()
    server.start()
    try:
        with AuthServer() as auth, FaultProxy(server.port) as faults:
            protect(faults, auth)
            yield auth, faults
    finally:
        server.stop()


def client_credentials(auth: AuthServer, faults: FaultProxy, **oauth: Any) -> dict[str, Any]:
    return {
        "url": faults.url(),
        "call-timeout": "10s",
        "oauth": {"grant": "client_credentials", "client-id": auth.client_id, "client-secret": "${CLIENT_SECRET}", **oauth},
    }


def leaked(auth: AuthServer, *texts: str) -> list[str]:
    everything = "\n".join(texts)
    return [t for t in auth.issued + [auth.client_secret] if t in everything]


async def test_client_credentials_discovered_from_the_401_and_renewed_when_refused(workdir: Path, protected) -> None:
    auth, faults = protected
    config = mender_toml(workdir, {"remote": client_credentials(auth, faults, scopes=["read"])}, PIPELINE)
    async with proxy(config, proxy_env={"CLIENT_SECRET": auth.client_secret, **LOUD}) as p:
        await p.wait_for("remote ready", lambda: p.upstream("remote")["state"] == "ready")
        r = await p.client.call_tool("echo", {"message": "with a token"})
        assert not r.is_error, text(r)
        first = list(auth.issued)
        # The server forgets every token: the next request is refused, a
        # new token is bought and the request sent again, once.
        auth.expire_all()
        r = await p.client.call_tool("echo", {"message": "with a new token"})
        assert not r.is_error, text(r)
        assert "with a new token" in text(r)
        # Not a retried attempt, nor a new session: the request itself was
        # sent again with the new token.
        assert "io.mender/call" not in (r.meta or {}), r.meta
        assert sum(1 for s in faults.seen if s.rpc_method == "initialize" and s.status == 200) == 1, faults.seen
        # The server quotes the (new) token in an error: the gateway passes
        # the error on with the token redacted, as it was registered when
        # it arrived.
        try:
            quoted = str(await p.client.call_tool("echo", {"message": SHOW_TOKEN}))
        except Exception as e:  # a JSON-RPC error
            quoted = str(e)
        assert "may not echo that" in quoted and "[REDACTED]" in quoted, quoted
        # A result (not an error) that carries the token: under the default
        # `redact-results = "secrets"` the tokens obtained for this server
        # are among its secrets, as its config's credentials are.
        token = auth.issued[-1]
        r = await p.client.call_tool("echo", {"message": f"it is {token}"})
        assert not r.is_error and token not in text(r) and "it is [REDACTED]" in text(r), text(r)
        stderr, status = p.stderr(), json.dumps(p.status())

    # Discovery began at the server's challenge: the first request had no
    # token and was refused with the resource metadata's address.
    assert faults.seen[0].authorization is None and faults.seen[0].status == 401, faults.seen[:3]
    assert any(s.path.startswith("/.well-known/oauth-protected-resource") for s in faults.seen)
    assert auth.grants() == ["client_credentials", "client_credentials"], auth.requests
    # RFC 8707: the resource is the server's URL; the scope the config's.
    assert all(scope == "read" and resource == faults.url() for _, scope, resource in auth.requests), auth.requests
    refused = [s for s in faults.seen if s.status == 401 and s.authorization]
    assert refused and refused[0].authorization == f"Bearer {first[0]}", faults.seen
    assert faults.seen[-1].authorization == f"Bearer {auth.issued[-1]}"
    # Neither token nor the client secret in the debug log or the status.
    assert not leaked(auth, stderr, status, quoted), leaked(auth, stderr, status, quoted)


@pytest.mark.parametrize("where", ["token-endpoint", "authorization-server"])
async def test_a_configured_authorization_server_skips_discovery(workdir: Path, protected, where: str) -> None:
    auth, faults = protected
    at = f"{auth.url}/token" if where == "token-endpoint" else auth.url
    config = mender_toml(workdir, {"remote": client_credentials(auth, faults, **{where: at})}, PIPELINE)
    async with proxy(config, proxy_env={"CLIENT_SECRET": auth.client_secret}) as p:
        await p.wait_for("remote ready", lambda: p.upstream("remote")["state"] == "ready")
        r = await p.client.call_tool("echo", {"message": "configured"})
        assert not r.is_error, text(r)
    # The very first request carried a token: no 401, no metadata asked of the server.
    assert faults.seen[0].authorization == f"Bearer {auth.issued[0]}", faults.seen[:3]
    assert not any(s.status == 401 or s.path.startswith("/.well-known") for s in faults.seen), faults.seen
    assert auth.grants() == ["client_credentials"]


async def test_insufficient_scope_steps_up_client_credentials(workdir: Path, protected) -> None:
    auth, faults = protected
    protect(faults, auth, call_scope="write")
    config = mender_toml(workdir, {"remote": client_credentials(auth, faults, scopes=["read"])}, PIPELINE)
    async with proxy(config, proxy_env={"CLIENT_SECRET": auth.client_secret}) as p:
        await p.wait_for("remote ready", lambda: p.upstream("remote")["state"] == "ready")
        r = await p.client.call_tool("echo", {"message": "needs write"})
        assert not r.is_error, text(r)
    assert [scope for _, scope, _ in auth.requests] == ["read", "read write"], auth.requests
    assert [s.status for s in faults.seen if s.rpc_method == "tools/call"] == [403, 200], faults.seen


def login(config: Path, server: str) -> subprocess.CompletedProcess[str]:
    """`mender login`, with this test as the person who opens the URL."""
    child = subprocess.Popen(
        [mender_bin(), "login", "--config", str(config), server],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    deadline = time.monotonic() + 20
    url = None
    while url is None and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        if line.strip().startswith("http"):
            url = line.strip()
    assert url, child.communicate(timeout=5)
    assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1" in url, url
    # The browser: follows the authorization server's redirect back to
    # mender's loopback listener.
    with urllib.request.urlopen(url, timeout=10) as page:
        assert b"signed in" in page.read()
    out, err = child.communicate(timeout=20)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


async def test_login_then_refresh_with_rotation_then_a_refused_refresh_token(workdir: Path, protected) -> None:
    auth, faults = protected
    token_file = workdir / "state" / "remote.json"
    spec = {
        "url": faults.url(),
        "call-timeout": "10s",
        "oauth": {"client-id": auth.client_id, "scopes": ["read"], "token-file": str(token_file)},
    }
    config = mender_toml(workdir, {"remote": spec}, PIPELINE)
    done = login(config, "remote")
    assert done.returncode == 0, done
    assert str(token_file) in done.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())["token_response"]
    assert stored["refresh_token"] in auth.refresh
    assert auth.grants() == ["authorization_code"]

    async with proxy(config, proxy_env=LOUD) as p:
        await p.wait_for("remote ready", lambda: p.upstream("remote")["state"] == "ready")
        r = await p.client.call_tool("echo", {"message": "signed in"})
        assert not r.is_error, text(r)
        # Refused access token: refreshed, the refresh token rotated.
        auth.expire_all()
        r = await p.client.call_tool("echo", {"message": "refreshed"})
        assert not r.is_error, text(r)
        assert "io.mender/call" not in (r.meta or {}), r.meta
        rotated = json.loads(token_file.read_text())["token_response"]
        assert rotated["refresh_token"] != stored["refresh_token"]
        assert rotated["refresh_token"] in auth.refresh and stored["refresh_token"] not in auth.refresh
        assert auth.grants() == ["authorization_code", "refresh_token"]

        # A refused refresh token: only a person can help, and the error says how.
        auth.expire_all()
        auth.revoke_refresh_tokens()
        r = await p.client.call_tool("echo", {"message": "refused"})
        assert r.is_error, text(r)
        error = await p.wait_for(
            "the login error in the status",
            lambda: "mender login remote" in json.dumps(p.status()) and json.dumps(p.status()),
            timeout=15,
        )
        stderr = p.stderr()
    assert "mender: `remote` needs a sign-in" in error, error
    assert not leaked(auth, stderr, error), leaked(auth, stderr, error)


def test_mender_call_signs_in_headless_with_a_registered_client(workdir: Path, protected) -> None:
    auth, faults = protected
    out = subprocess.run(
        [mender_bin(), "call", "--oauth", "--oauth-headless", "--tool", "echo", "--args", '{"message": "hi"}', faults.url()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out
    assert "hi" in out.stdout
    # No client id given: the client registered itself (RFC 7591).
    assert len(auth.registered) == 1, auth.registered
    assert auth.grants() == ["authorization_code"]
    assert not leaked(auth, out.stdout, out.stderr)


def test_without_stored_tokens_the_error_says_to_log_in(workdir: Path, protected) -> None:
    auth, faults = protected
    spec = {"url": faults.url(), "oauth": {"token-file": str(workdir / "none.json")}}
    config = mender_toml(workdir, {"remote": spec}, PIPELINE)
    out = subprocess.run([mender_bin(), "call", "--config", str(config), "remote"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0, out
    assert re.search(r"`remote` needs a sign-in \(no stored tokens\): run `mender login remote`", out.stderr), out.stderr
    assert not os.path.exists(workdir / "none.json")
