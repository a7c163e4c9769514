"""A small OAuth 2.1 authorization server on 127.0.0.1, and the bearer
check that makes an MCP server behind http_proxy.FaultProxy a protected
resource (RFC 9728), for the gateway's OAuth tests.

The authorization server publishes RFC 8414 metadata and a token
endpoint for three grants: client_credentials (client_secret_basic or
_post), authorization_code (with PKCE S256; `/authorize` approves at once
and redirects) and refresh_token (rotated: each refresh token works once).
A test can shorten the life of tokens (`expires_in`), revoke every token
(`revoke_all`) or every refresh token, and read what was asked for.

The protected resource answers 401 with `WWW-Authenticate: Bearer
resource_metadata=…` to a request without a live token, serves its
metadata naming the authorization server, and answers 403
`insufficient_scope` to a `tools/call` whose token lacks `call_scope`,
and quotes the token in its error to an echo of SHOW_TOKEN.

Only the standard library, on threads in the test's own process."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from http_proxy import FaultProxy


@dataclass
class Token:
    value: str
    scopes: list[str]
    expires_at: float
    client_id: str


@dataclass
class AuthServer:
    client_id: str = "mender-test-client"
    client_secret: str = "cs-test-6c1f0b9a77e2"
    expires_in: int = 3600
    # What was asked for: (grant, scope, resource) per token request.
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    tokens: dict[str, Token] = field(default_factory=dict)
    refresh: dict[str, Token] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    _codes: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> AuthServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "registration_endpoint": f"{self.url}/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        }

    def live(self, value: str | None) -> Token | None:
        with self._lock:
            t = self.tokens.get(value or "")
            return t if t and t.expires_at > time.time() else None

    def expire_all(self) -> None:
        """Every access token is refused from now on (their holders don't know)."""
        with self._lock:
            self.tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self.refresh.clear()

    def grants(self) -> list[str]:
        with self._lock:
            return [g for g, _, _ in self.requests]

    def _issue(self, client_id: str, scopes: list[str], with_refresh: bool) -> dict[str, Any]:
        access = Token("at-" + secrets.token_hex(12), scopes, time.time() + self.expires_in, client_id)
        answer: dict[str, Any] = {"access_token": access.value, "token_type": "Bearer", "expires_in": self.expires_in}
        if scopes:
            answer["scope"] = " ".join(scopes)
        with self._lock:
            self.tokens[access.value] = access
            self.issued.append(access.value)
            if with_refresh:
                r = Token("rt-" + secrets.token_hex(12), scopes, time.time() + 86400, client_id)
                self.refresh[r.value] = r
                self.issued.append(r.value)
                answer["refresh_token"] = r.value
        return answer

    def _client(self, headers: Any, form: dict[str, str]) -> tuple[str | None, bool]:
        """The client id and whether it authenticated (basic or post)."""
        auth = headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            return cid, cid == self.client_id and secret == self.client_secret
        cid = form.get("client_id")
        return cid, cid == self.client_id and form.get("client_secret") == self.client_secret

    def _token(self, headers: Any, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        scopes = form.get("scope", "").split()
        with self._lock:
            self.requests.append((grant, form.get("scope", ""), form.get("resource", "")))
        cid, authenticated = self._client(headers, form)
        if grant == "client_credentials":
            if not authenticated:
                return 401, {"error": "invalid_client"}
            return 200, self._issue(self.client_id, scopes, with_refresh=False)
        if grant == "authorization_code":
            with self._lock:
                found = self._codes.pop(form.get("code", ""), None)
            if found is None:
                return 400, {"error": "invalid_grant"}
            challenge, code_client, granted = found
            verifier = form.get("code_verifier", "")
            computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if computed != challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"}
            return 200, self._issue(code_client, granted, with_refresh=True)
        if grant == "refresh_token":
            with self._lock:
                old = self.refresh.pop(form.get("refresh_token", ""), None)
            if old is None:
                return 400, {"error": "invalid_grant", "error_description": "refresh token unknown or used"}
            return 200, self._issue(old.client_id, scopes or old.scopes, with_refresh=True)
        return 400, {"error": "unsupported_grant_type"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path.startswith("/.well-known/oauth-authorization-server"):
                    return self._answer(200, server.metadata())
                if url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code = "code-" + secrets.token_hex(8)
                    with server._lock:
                        server._codes[code] = (q.get("code_challenge", ""), q.get("client_id", ""), q.get("scope", "").split())
                    target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
                    return self._answer(302, None, {"Location": target})
                self._answer(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                if self.path == "/register":
                    body = json.loads(raw or "{}")
                    cid = "dcr-" + secrets.token_hex(6)
                    with server._lock:
                        server.registered.append(cid)
                    return self._answer(201, {"client_id": cid, "redirect_uris": body.get("redirect_uris", []), "token_endpoint_auth_method": "none"})
                if self.path == "/token":
                    form = {k: v[0] for k, v in parse_qs(raw).items()}
                    status, body = server._token(self.headers, form)
                    return self._answer(status, body, {"Cache-Control": "no-store"})
                self._answer(404, {"error": "not_found"})

        return Handler


def protect(proxy: FaultProxy, auth: AuthServer, call_scope: str | None = None) -> None:
    """Puts `proxy`'s server behind a bearer check against `auth`'s tokens."""
    metadata_path = "/.well-known/oauth-protected-resource/mcp"
    challenge = f'Bearer resource_metadata="{proxy.url(metadata_path)}"'

    def gate(method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        try:
            message = json.loads(body) if body else {}
        except ValueError:
            message = {}
        rpc_method = message.get("method") if isinstance(message, dict) else None
        if path.startswith("/.well-known/oauth-protected-resource"):
            body = {"resource": proxy.url(), "authorization_servers": [auth.url], "bearer_methods_supported": ["header"]}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        presented = (headers.get("Authorization") or "").removeprefix("Bearer ")
        token = auth.live(presented)
        if token is None:
            return 401, {"WWW-Authenticate": challenge + ', error="invalid_token"'}, b""
        if call_scope and rpc_method == "tools/call" and call_scope not in token.scopes:
            header = f'Bearer error="insufficient_scope", scope="{call_scope}", resource_metadata="{proxy.url(metadata_path)}"'
            return 403, {"WWW-Authenticate": header}, b""
        if rpc_method == "tools/call" and message.get("params", {}).get("arguments", {}).get("message") == SHOW_TOKEN:
            # A server careless with credentials: its error quotes the token.
            error = {"code": -32000, "message": f"token {presented} may not echo that"}
            answer = {"jsonrpc": "2.0", "id": message.get("id"), "error": error}
            return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        return None

    proxy.gate = gate


# An echo of this makes the protected server answer with an error that
# quotes the caller's token.
SHOW_TOKEN = "show me the token"
