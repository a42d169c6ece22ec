"""The official MCP Python SDK (`mcp` 2.3) authorizing against Latchkey with the
SDK's own OAuth client, driven through a real browser, step by step:

1. connect: the guard answers 401; the SDK discovers the protected-resource
   metadata and the AS metadata, registers (DCR, or a CIMD URL as client_id),
   sends the user to authorize with PKCE and `resource`, checks `state` and `iss`,
   and exchanges the code;
2. list tools and call `add` (and `whoami`);
3. refresh: the Python SDK refreshes only when `expires_in` says the access token
   has expired (never on a 401), so the script waits until then (the suite runs
   Latchkey with a short access-token lifetime) and calls again on the same
   `Mcp-Session-Id`;
4. revoke the tokens (RFC 7009), show the guard answers 401, and record what the
   SDK then does (a failed refresh, then a new authorization, which is refused).

Usage:
    EMAIL=... PASSWORD=... python e2e/python/client.py --mcp-url URL [options]

The browser step runs `node e2e/lib/approve.mjs <authorization-url>`, which signs
in, approves and prints the callback URL (it also serves the loopback callback).

Output: one JSON object on stdout (the step log and the recorded HTTP exchanges);
the exit status is 0 only if every step passed.

Invariants:
- Nothing secret is printed or logged: tokens, codes, verifiers, `state` and
  `Authorization` credentials are redacted in the recorded exchanges; tokens are
  compared through SHA-256 fingerprints.
- Every step asserts what it claims; the first failure ends the run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if sys.version_info < (3, 11):  # pragma: no cover - the venv runs 3.11; anyio brings the backport.
    from exceptiongroup import BaseExceptionGroup

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.types import TextContent

#: The client name the script registers (shown on the consent page).
CLIENT_NAME = "Latchkey E2E Python SDK client"

#: Parameter and JSON member names whose values are secret (kept in step with e2e/lib/redact.mjs).
SECRET_NAMES = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "code",
        "code_verifier",
        "client_secret",
        "client_assertion",
        "assertion",
        "password",
        "state",
        "registration_access_token",
        "device_code",
        "subject_token",
        "actor_token",
    }
)
REDACTED = "<redacted>"

#: Discovery kinds whose consecutive probes (several well-known URLs) read as one step.
PROBED_KINDS = frozenset({"prm", "as-metadata"})

#: AS metadata members the recorder learns, to name the exchanges that follow.
ENDPOINT_NAMES = ("authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint")

#: The approve CLI, next to this script's package.
DEFAULT_APPROVE_SCRIPT = Path(__file__).resolve().parent.parent / "lib" / "approve.mjs"


class StepFailed(Exception):
    """A step's assertion did not hold."""


class AuthorizationRefused(Exception):
    """Raised by the redirect handler when no new authorization is allowed (after revocation)."""


def check(condition: object, message: str) -> None:
    """Fail the current step with `message` unless `condition` holds."""
    if not condition:
        raise StepFailed(message)


def fingerprint(secret: str) -> str:
    """A short SHA-256 fingerprint, for comparing tokens without revealing them."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def redact_params(params: dict[str, str]) -> dict[str, str]:
    """Redact secret entries of a flat parameter mapping."""
    return {name: REDACTED if name.lower() in SECRET_NAMES else value for name, value in params.items()}


def redact_json(value: Any) -> Any:
    """Deeply redact secret members of a JSON value."""
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, dict):
        return {name: REDACTED if name.lower() in SECRET_NAMES else redact_json(item) for name, item in value.items()}
    return value


def redact_url(url: str) -> str:
    """Redact secret query parameters and the fragment of `url`."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(name, REDACTED if name.lower() in SECRET_NAMES else value) for name, value in pairs])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, REDACTED if parts.fragment else ""))


def bare(url: str) -> str:
    """`scheme://authority/path`, without query or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class Recorder:
    """Records every HTTP exchange of the SDK's httpx2 client through event hooks.

    MCP endpoint bodies are never read (they may be SSE streams); other JSON bodies
    are read (the auth flow reads them anyway) and stored redacted.
    """

    def __init__(self, mcp_url: str, cimd_url: str | None) -> None:
        self.mcp_url = bare(mcp_url)
        self.cimd_url = cimd_url
        self.exchanges: list[dict[str, Any]] = []
        self.endpoints: dict[str, str] = {}
        self._by_request: dict[int, dict[str, Any]] = {}

    def classify(self, url: str, method: str) -> str:
        """Name what a request to `url` is for."""
        plain = bare(url)
        path = urlsplit(url).path
        if plain == self.mcp_url:
            return "mcp"
        if path.startswith("/.well-known/oauth-protected-resource"):
            return "prm"
        if "/.well-known/oauth-authorization-server" in path or "/.well-known/openid-configuration" in path:
            return "as-metadata"
        if self.cimd_url is not None and url == self.cimd_url:
            return "cimd"
        if plain == self.endpoints.get("registration_endpoint") and method == "POST":
            return "register"
        if plain == self.endpoints.get("token_endpoint"):
            return "token"
        if plain == self.endpoints.get("revocation_endpoint"):
            return "revoke"
        if plain == self.endpoints.get("authorization_endpoint"):
            return "authorize"
        return "other"

    def note(self, kind: str, method: str, url: str, **extra: Any) -> dict[str, Any]:
        """Record a step that did not go through httpx2 (the browser's authorization request)."""
        exchange = {"seq": len(self.exchanges) + 1, "kind": kind, "method": method, "url": redact_url(url), **extra}
        self.exchanges.append(exchange)
        return exchange

    async def on_request(self, request: httpx2.Request) -> None:
        """httpx2 request hook."""
        url = str(request.url)
        kind = self.classify(url, request.method)
        exchange: dict[str, Any] = {
            "seq": len(self.exchanges) + 1,
            "kind": kind,
            "method": request.method,
            "url": redact_url(url),
        }
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme = authorization.split(" ", 1)[0]
            exchange["authorization"] = f"{scheme} {REDACTED}"
        session_id = request.headers.get("mcp-session-id")
        if session_id is not None:
            exchange["sessionId"] = session_id
        if kind != "mcp":
            content_type = request.headers.get("content-type", "")
            try:
                body = request.content
            except httpx2.RequestNotRead:
                body = b""
            if body and "json" in content_type:
                try:
                    exchange["requestJson"] = redact_json(json.loads(body))
                except ValueError:
                    exchange["requestJson"] = "<unparseable JSON>"
            elif body:
                params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
                exchange["requestParams"] = redact_params(params)
                if kind == "token":
                    exchange["grantType"] = params.get("grant_type")
        self.exchanges.append(exchange)
        self._by_request[id(request)] = exchange

    async def on_response(self, response: httpx2.Response) -> None:
        """httpx2 response hook."""
        exchange = self._by_request.pop(id(response.request), None)
        if exchange is None:
            return
        exchange["status"] = response.status_code
        challenge = response.headers.get("www-authenticate")
        if challenge is not None:
            exchange["wwwAuthenticate"] = challenge
        assigned = response.headers.get("mcp-session-id")
        if assigned is not None:
            exchange["responseSessionId"] = assigned
        if exchange["kind"] != "mcp" and "json" in response.headers.get("content-type", "").lower():
            await response.aread()
            try:
                document = json.loads(response.content)
            except ValueError:
                exchange["responseJson"] = "<unparseable JSON>"
                return
            exchange["responseJson"] = redact_json(document)
            if exchange["kind"] == "as-metadata" and response.status_code == 200 and isinstance(document, dict):
                for name in ENDPOINT_NAMES:
                    value = document.get(name)
                    if isinstance(value, str):
                        self.endpoints[name] = bare(value)

    def hooks(self) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
        """Event hooks for an httpx2 client."""
        return {"request": [self.on_request], "response": [self.on_response]}

    def latest(self, kind: str, status: int | None = None) -> dict[str, Any] | None:
        """The most recent exchange of `kind` (with `status`, if given)."""
        for exchange in reversed(self.exchanges):
            if exchange["kind"] == kind and (status is None or exchange.get("status") == status):
                return exchange
        return None


def label(exchange: dict[str, Any]) -> str:
    """`kind` or `token:<grant_type>`."""
    if exchange["kind"] == "token" and exchange.get("grantType"):
        return f"token:{exchange['grantType']}"
    return str(exchange["kind"])


def collapsed_sequence(exchanges: list[dict[str, Any]]) -> list[str]:
    """`kind status` per exchange, consecutive discovery probes of one kind collapsed (last status wins)."""
    sequence: list[str] = []
    previous = ""
    for exchange in exchanges:
        name = label(exchange)
        entry = f"{name} {exchange.get('status', '-')}"
        if name == previous and name in PROBED_KINDS:
            sequence[-1] = entry
        else:
            sequence.append(entry)
        previous = name
    return sequence


@dataclass
class MemoryStorage:
    """The SDK's `TokenStorage` protocol, in memory, remembering when tokens were saved."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None
    tokens_saved_at: float = 0.0
    history: list[str] = field(default_factory=list)

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.tokens_saved_at = time.time()
        self.history.append("set_tokens")

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        self.history.append("set_client_info")


@dataclass
class Options:
    """Command-line options."""

    mcp_url: str
    email: str
    password: str
    cimd_url: str | None
    redirect_port: int
    refresh: str
    revocation_effect: str
    max_wait: float
    screenshots_prefix: str | None
    check_identity: bool
    revoke_access_token: bool
    approve_script: Path
    node: str


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the approve CLI then listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Runner:
    """Runs the four steps and keeps the step log."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.redirect_uri = f"http://127.0.0.1:{options.redirect_port}/callback"
        self.recorder = Recorder(options.mcp_url, options.cimd_url)
        self.storage = MemoryStorage()
        self.steps: list[dict[str, Any]] = []
        self.allow_authorization = True
        self.authorization_requests = 0
        self.callback_url: str | None = None
        self.client_id = ""
        self.issuer = ""
        self.resource = ""

        metadata = OAuthClientMetadata(
            client_name=CLIENT_NAME,
            redirect_uris=[self.redirect_uri],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            application_type="native",
        )
        cimd = options.cimd_url
        https_cimd = cimd if cimd is not None and cimd.startswith("https://") else None
        self.provider = OAuthClientProvider(
            server_url=options.mcp_url,
            client_metadata=metadata,
            storage=self.storage,
            redirect_handler=self.redirect_handler,
            callback_handler=self.callback_handler,
            client_metadata_url=https_cimd,
        )
        if cimd is not None and https_cimd is None:
            # mcp 2.3 accepts only https CIMD URLs in the constructor; Latchkey's development
            # flag allows http://127.0.0.1 documents. Everything after the constructor is the
            # SDK's own CIMD path (used only if the AS advertises support).
            self.provider.context.client_metadata_url = cimd

    async def redirect_handler(self, authorization_url: str) -> None:
        """The SDK's `redirect_handler`: send the user agent to `authorization_url`."""
        self.authorization_requests += 1
        query = dict(parse_qsl(urlsplit(authorization_url).query, keep_blank_values=True))
        self.recorder.note(
            "authorize",
            "GET",
            authorization_url,
            requestParams=redact_params(query),
            note=(
                "opened in the browser"
                if self.allow_authorization
                else "refused: no new authorization after revocation"
            ),
        )
        if not self.allow_authorization:
            raise AuthorizationRefused("a new authorization was requested after revocation; refused")
        env = {**os.environ, "EMAIL": self.options.email, "PASSWORD": self.options.password, "DECISION": "approve"}
        if self.options.screenshots_prefix:
            env["SCREENSHOTS_PREFIX"] = self.options.screenshots_prefix
        process = await asyncio.create_subprocess_exec(
            self.options.node,
            str(self.options.approve_script),
            authorization_url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
        if process.returncode != 0:
            raise StepFailed(f"approve.mjs failed ({process.returncode}): {stderr.decode('utf-8', 'replace').strip()}")
        self.callback_url = stdout.decode().strip()

    async def callback_handler(self) -> AuthorizationCodeResult:
        """The SDK's `callback_handler`: the code, state and iss the browser came back with."""
        check(self.callback_url, "no callback URL from the browser")
        params = dict(parse_qsl(urlsplit(str(self.callback_url)).query, keep_blank_values=True))
        self.callback_url = None
        check("error" not in params, f"the authorization response is an error: {params.get('error')}")
        check(params.get("code"), "the authorization response has no code")
        # The SDK compares state (constant time) and iss (RFC 9207) itself.
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    async def step(self, name: str, body: Callable[[], Awaitable[dict[str, Any]]], announce: bool = True) -> None:
        """Run one step and record it."""
        if announce:
            print(f"step: {name}", file=sys.stderr)
        try:
            detail = await body()
        except Exception as error:
            self.steps.append({"name": name, "ok": False, "error": describe(error)})
            raise
        self.steps.append({"name": name, "ok": True, "detail": detail})

    def as_metadata(self) -> dict[str, Any]:
        exchange = self.recorder.latest("as-metadata", 200)
        check(exchange, "no authorization server metadata was fetched")
        assert exchange is not None
        return exchange["responseJson"]

    def prm(self) -> dict[str, Any]:
        exchange = self.recorder.latest("prm", 200)
        check(exchange, "no protected resource metadata was fetched")
        assert exchange is not None
        return exchange["responseJson"]

    def since(self, mark: int) -> list[dict[str, Any]]:
        """Exchanges from `mark` on, without the long-lived GET (SSE) streams the SDK may reopen."""
        return [
            exchange
            for exchange in self.recorder.exchanges
            if exchange["seq"] >= mark and not (exchange["kind"] == "mcp" and exchange["method"] == "GET")
        ]

    def mcp_session_id(self) -> str | None:
        """The Mcp-Session-Id the SDK sent most recently, or the one the server assigned."""
        for exchange in reversed(self.recorder.exchanges):
            if exchange["kind"] != "mcp":
                continue
            for name in ("sessionId", "responseSessionId"):
                if name in exchange:
                    return str(exchange[name])
        return None

    async def probe(self, access_token: str, session_id: str | None) -> tuple[int, str]:
        """POST a JSON-RPC ping with `access_token`, outside the SDK; returns status and challenge."""
        headers = {
            "authorization": f"Bearer {access_token}",
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        }
        if session_id is not None:
            headers["mcp-session-id"] = session_id
        async with httpx2.AsyncClient(timeout=10.0) as raw:
            response = await raw.post(
                self.options.mcp_url, headers=headers, json={"jsonrpc": "2.0", "id": "probe", "method": "ping"}
            )
            return response.status_code, response.headers.get("www-authenticate", "")

    async def wait_for_sdk_expiry(self) -> float:
        """Sleep until the stored tokens' `expires_in` has passed; returns the seconds waited."""
        tokens = self.storage.tokens
        check(tokens is not None and tokens.expires_in is not None, "the token response has no expires_in")
        assert tokens is not None and tokens.expires_in is not None
        remaining = self.storage.tokens_saved_at + tokens.expires_in + 1 - time.time()
        check(
            remaining < self.options.max_wait,
            f"the access token lives {tokens.expires_in} s, longer than --max-wait",
        )
        if remaining > 0:
            print(f"waiting {remaining:.0f} s for the access token to expire", file=sys.stderr)
            await asyncio.sleep(remaining)
        return max(remaining, 0.0)

    async def wait_until_refused(self, access_token: str, session_id: str | None) -> tuple[int, str]:
        """Wait until the guard refuses `access_token` (past its expiry and the guard's leeway)."""
        await self.wait_for_sdk_expiry()
        deadline = time.time() + self.options.max_wait
        while True:
            status, challenge = await self.probe(access_token, session_id)
            if status == 401:
                return status, challenge
            check(status == 200, f"unexpected status {status} while waiting for expiry")
            check(time.time() < deadline, "the guard still accepts the expired token")
            await asyncio.sleep(1.0)

    async def run(self) -> None:
        """All four steps, with one SDK client and one MCP session."""
        recorder = self.recorder
        http_client = httpx2.AsyncClient(
            auth=self.provider,
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks=recorder.hooks(),
        )
        expecting_refusal = False
        revoke_mark = 0
        try:
            transport = streamable_http_client(self.options.mcp_url, http_client=http_client)
            async with http_client, Client(transport) as client:
                await self.step("connect", lambda: self.check_connect(client))
                await self.step("list-and-call", lambda: self.list_and_call(client))
                await self.step("refresh", lambda: self.refresh(client))

                async def revoke_and_call() -> dict[str, Any]:
                    nonlocal expecting_refusal, revoke_mark
                    detail = await self.revoke()
                    self.allow_authorization = False
                    expecting_refusal = True
                    revoke_mark = len(recorder.exchanges) + 1
                    await client.call_tool("add", {"a": 1, "b": 2})
                    raise StepFailed(f"a call after revocation succeeded ({detail})")

                await self.step("revoke", revoke_and_call)
        except BaseException as error:  # noqa: BLE001 - the SDK raises the refusal out of its task group.
            if not expecting_refusal or not contains(error, AuthorizationRefused):
                raise
            # The refusal ended the SDK's connection, as intended: check what led to it. The
            # call was cancelled, not failed, so the step may not have been logged yet.
            if self.steps and self.steps[-1]["name"] == "revoke" and not self.steps[-1]["ok"]:
                self.steps.pop()
            await self.step("revoke", lambda: self.after_revocation(revoke_mark), announce=False)

    async def check_connect(self, client: Client) -> dict[str, Any]:
        recorder = self.recorder
        sequence = collapsed_sequence(recorder.exchanges)
        client_info = self.storage.client_info
        cimd_used = client_info is not None and client_info.client_id == self.options.cimd_url
        if self.options.cimd_url is not None:
            # The SDK silently falls back to DCR when the AS does not advertise CIMD support.
            check(
                cimd_used,
                "CIMD was asked for but the SDK registered instead (client_id_metadata_document_supported?)",
            )
        registration = [] if cimd_used else ["register 201"]
        expected = [
            "mcp 401",
            "prm 200",
            "as-metadata 200",
            *registration,
            "authorize -",
            "token:authorization_code 200",
        ]
        check(sequence[: len(expected)] == expected, f"discovery sequence {sequence} does not start with {expected}")
        check(
            len(sequence) > len(expected) and sequence[len(expected)].startswith("mcp "),
            f"no MCP request after the token in {sequence}",
        )
        first = recorder.exchanges[0]
        challenge = first.get("wwwAuthenticate", "")
        check(challenge.startswith("Bearer "), "the 401 must carry a Bearer challenge")
        check('resource_metadata="' in challenge, "the 401 challenge has no resource_metadata")
        check("error=" not in challenge, "a request without a token gets no error= (RFC 6750 §3.1)")

        metadata = self.as_metadata()
        prm = self.prm()
        self.issuer = str(metadata.get("issuer"))
        self.resource = str(prm.get("resource"))
        check(self.resource == self.options.mcp_url, "PRM resource must be exactly the MCP URL")
        check((prm.get("authorization_servers") or [None])[0] == self.issuer, "PRM authorization_servers[0] != issuer")
        check("S256" in (metadata.get("code_challenge_methods_supported") or []), "AS metadata lacks S256")

        authorize = recorder.latest("authorize")
        check(authorize is not None, "no authorization request")
        assert authorize is not None
        params = authorize["requestParams"]
        check(params.get("response_type") == "code", "response_type must be code")
        check(params.get("code_challenge_method") == "S256", "PKCE S256 required")
        check(params.get("code_challenge"), "no code_challenge")
        check(params.get("state"), "no state")
        check(params.get("redirect_uri") == self.redirect_uri, "redirect_uri mismatch")
        check(params.get("resource") == self.resource, "authorize must carry resource (RFC 8707)")
        self.client_id = str(params.get("client_id"))
        if cimd_used:
            check(self.client_id == self.options.cimd_url, "with CIMD the client_id is the document URL")
            check(metadata.get("client_id_metadata_document_supported") is True, "AS must advertise CIMD")
        else:
            register = recorder.latest("register")
            check(register is not None, "no registration")
            assert register is not None
            sent = register.get("requestJson") or {}
            check(sent.get("application_type") == "native", "the SDK registers as application_type native")
            received = register.get("responseJson") or {}
            check(received.get("client_id") == self.client_id, "authorize must use the registered client_id")
            check(received.get("redirect_uris") == [self.redirect_uri], "registration must echo redirect_uris")

        token = recorder.latest("token")
        check(token is not None, "no token request")
        assert token is not None
        sent_params = token.get("requestParams") or {}
        check(sent_params.get("resource") == self.resource, "the code exchange must carry resource")
        check(sent_params.get("code_verifier"), "the code exchange must carry code_verifier")
        check(sent_params.get("client_id") == self.client_id, "a public client sends client_id")
        tokens = self.storage.tokens
        check(tokens is not None and tokens.refresh_token, "no refresh token was issued")
        check(tokens is not None and isinstance(tokens.expires_in, int), "expires_in must be a number")
        check(self.mcp_session_id(), "the MCP server assigned no Mcp-Session-Id")
        return {
            "sequence": sequence,
            "client_id": self.client_id,
            "issuer": self.issuer,
            "resource": self.resource,
            "scope_requested": params.get("scope"),
            "protocol_version": client.protocol_version,
            "session_id": self.mcp_session_id(),
        }

    async def list_and_call(self, client: Client) -> dict[str, Any]:
        tools = await client.list_tools()
        names = sorted(tool.name for tool in tools.tools)
        check("add" in names, f"tool add missing from {names}")
        result = await client.call_tool("add", {"a": 2, "b": 3})
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        check(texts == ["5"] and not result.is_error, f"add(2, 3) returned {texts}")
        identity: dict[str, Any] = {}
        if "whoami" in names:
            whoami = await client.call_tool("whoami", {})
            whoami_texts = [block.text for block in whoami.content if isinstance(block, TextContent)]
            identity = json.loads(whoami_texts[0]) if whoami_texts else {}
            if self.options.check_identity:
                check(identity.get("x-latchkey-client-id") == self.client_id, "the guard must forward the client_id")
                check(identity.get("x-latchkey-subject"), "the guard must forward the subject")
        return {"tools": names, "sum": texts[0], "identity": identity}

    async def refresh(self, client: Client) -> dict[str, Any]:
        before = self.storage.tokens
        check(before is not None and before.refresh_token, "no tokens to refresh")
        assert before is not None and before.refresh_token is not None
        old_access, old_refresh = before.access_token, before.refresh_token
        session_before = self.mcp_session_id()
        waited = 0.0
        if self.options.refresh == "wait-for-expiry":
            waited = await self.wait_for_sdk_expiry()
        else:
            # mark-expired: what the passing of expires_in looks like to the SDK, without the wait.
            self.provider.context.token_expiry_time = time.time() - 1
        mark = len(self.recorder.exchanges) + 1
        result = await client.call_tool("add", {"a": 40, "b": 2})
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        check(texts == ["42"], f"add(40, 2) returned {texts}")
        since = self.since(mark)
        sequence = collapsed_sequence(since)
        check(sequence == ["token:refresh_token 200", "mcp 200"], f"expected a refresh then the call, got {sequence}")
        refresh = next(e for e in since if e["kind"] == "token")
        check(refresh.get("requestParams", {}).get("resource") == self.resource, "the refresh must carry resource")
        call = since[-1]
        check(call.get("sessionId") == session_before, "the call after the refresh must keep the Mcp-Session-Id")
        after = self.storage.tokens
        check(after is not None and after.refresh_token, "the refresh stored no tokens")
        assert after is not None and after.refresh_token is not None
        check(fingerprint(after.access_token) != fingerprint(old_access), "a new access token is expected")
        check(fingerprint(after.refresh_token) != fingerprint(old_refresh), "the refresh token must rotate")
        return {"sequence": sequence, "session_id": session_before, "waited_seconds": round(waited, 1)}

    async def revoke(self) -> dict[str, Any]:
        tokens = self.storage.tokens
        check(tokens is not None and tokens.refresh_token, "no tokens to revoke")
        assert tokens is not None and tokens.refresh_token is not None
        endpoint = self.as_metadata().get("revocation_endpoint")
        check(isinstance(endpoint, str), "the AS metadata has no revocation_endpoint")
        async with httpx2.AsyncClient(timeout=10.0, event_hooks=self.recorder.hooks()) as plain:
            to_revoke = [(tokens.refresh_token, "refresh_token")]
            if self.options.revoke_access_token:
                to_revoke.append((tokens.access_token, "access_token"))
            for token, hint in to_revoke:
                # RFC 7009 §2.1: a public client identifies itself with client_id only.
                response = await plain.post(
                    str(endpoint), data={"token": token, "token_type_hint": hint, "client_id": self.client_id}
                )
                check(response.status_code == 200, f"revoking the {hint} must answer 200, got {response.status_code}")
        session_id = self.mcp_session_id()
        if self.options.revocation_effect == "immediate":
            status, challenge = await self.probe(tokens.access_token, session_id)
        else:
            status, challenge = await self.wait_until_refused(tokens.access_token, session_id)
        check(status == 401, f"the revoked access token must be refused with 401, got {status}")
        check('error="invalid_token"' in challenge, "a refused token gets error=\"invalid_token\"")
        return {"guard_status": status}

    async def after_revocation(self, mark: int) -> dict[str, Any]:
        since = self.since(mark)
        sequence = collapsed_sequence(since)
        if self.options.revocation_effect == "immediate":
            # The SDK still believes the token valid: it sends it, gets 401, and re-authorizes.
            check(sequence[:1] == ["mcp 401"], f"expected a 401 first, got {sequence}")
        else:
            # expires_in has passed: the SDK refreshes first, which must fail, then re-authorizes.
            check(
                sequence[:2] == ["token:refresh_token 400", "mcp 401"],
                f"expected a failed refresh then 401, got {sequence}",
            )
            refresh = next(e for e in since if e["kind"] == "token")
            error_code = (refresh.get("responseJson") or {}).get("error")
            check(error_code == "invalid_grant", f"a revoked refresh token is invalid_grant, got {error_code}")
        check(sequence[-1] == "authorize -", f"the SDK must end by asking for a new authorization, got {sequence}")
        return {"sequence": sequence, "sdk_outcome": "new authorization requested and refused"}

    def report(self, ok: bool, error: str | None) -> dict[str, Any]:
        return {
            "client": "mcp-python-sdk",
            "sdk_version": version("mcp"),
            "ok": ok,
            "error": error,
            "client_id": self.client_id,
            "issuer": self.issuer,
            "resource": self.resource,
            "steps": self.steps,
            "exchanges": self.recorder.exchanges,
        }


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (possibly nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def describe(error: BaseException) -> str:
    """`Type: message` of each real failure inside `error`."""
    return "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves(error))


def contains(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether `error`, an exception group inside it, or its causes hold an exception of `kind`."""
    if isinstance(error, kind):
        return True
    if isinstance(error, BaseExceptionGroup):
        return any(contains(inner, kind) for inner in error.exceptions)
    cause = error.__cause__ or error.__context__
    return cause is not None and contains(cause, kind)


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mcp-url", required=True, help="the MCP endpoint behind Latchkey's guard")
    parser.add_argument("--cimd-url", help="use this Client ID Metadata Document URL as client_id")
    parser.add_argument("--redirect-port", type=int, default=0, help="callback port (default: a free one)")
    parser.add_argument(
        "--refresh",
        choices=["wait-for-expiry", "mark-expired"],
        default="wait-for-expiry",
        help="wait until expires_in passes, or mark the SDK's stored expiry as passed",
    )
    parser.add_argument(
        "--revocation-effect",
        choices=["at-expiry", "immediate"],
        default="at-expiry",
        help="when the guard refuses a revoked access token",
    )
    parser.add_argument("--max-wait", type=float, default=120.0, help="upper bound for waits, in seconds")
    parser.add_argument("--screenshots-prefix", help="prefix for screenshots of the login and consent pages")
    parser.add_argument("--no-check-identity", action="store_true", help="do not assert the guard's identity headers")
    parser.add_argument(
        "--no-revoke-access-token",
        action="store_true",
        help="revoke only the refresh token (for an AS that cannot revoke JWT access tokens)",
    )
    parser.add_argument("--approve-script", type=Path, default=DEFAULT_APPROVE_SCRIPT)
    parser.add_argument("--node", default=os.environ.get("NODE", "node"))
    args = parser.parse_args(argv)
    email = os.environ.get("EMAIL")
    password = os.environ.get("PASSWORD")
    if not email or not password:
        parser.error("EMAIL and PASSWORD must be set in the environment")
    return Options(
        mcp_url=args.mcp_url,
        email=email,
        password=password,
        cimd_url=args.cimd_url,
        redirect_port=args.redirect_port or free_port(),
        refresh=args.refresh,
        revocation_effect=args.revocation_effect,
        max_wait=args.max_wait,
        screenshots_prefix=args.screenshots_prefix,
        check_identity=not args.no_check_identity,
        revoke_access_token=not args.no_revoke_access_token,
        approve_script=args.approve_script,
        node=args.node,
    )


class ExpectedRefusalFilter(logging.Filter):
    """Drops the SDK's error log for the refusal step 4 provokes on purpose; keeps everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info is not None and isinstance(record.exc_info[1], AuthorizationRefused))


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("mcp.client.auth.oauth2").addFilter(ExpectedRefusalFilter())
    options = parse_options(argv)
    runner = Runner(options)
    try:
        asyncio.run(runner.run())
    except BaseException as error:  # noqa: BLE001 - report every failure as JSON, then exit non-zero.
        if isinstance(error, KeyboardInterrupt):
            raise
        print(json.dumps(runner.report(False, describe(error))))
        return 1
    ok = all(step["ok"] for step in runner.steps) and len(runner.steps) == 4
    print(json.dumps(runner.report(ok, None if ok else "not every step passed")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
