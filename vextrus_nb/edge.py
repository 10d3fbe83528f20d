"""The platform's edge, as it runs: Traefik's live state read from its API (entrypoints,
routers, middlewares, overview) and what its public entrypoints really answer (a TLS
handshake, the HTTP redirect, whether the API or dashboard answers there, whether a route
reaches its service). Plain data and plain judgements; checks/edge.py turns them into findings.

Requests to the public entrypoints accept any certificate: the sandbox's is self-signed, and
what is judged here is whether TLS is there at all, not who signed it. They never follow a
redirect to another host, so a probe only ever reaches the host it was pointed at.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from vextrus_nb.probes import describe_error

# Entrypoints that are Traefik's own (API, ping, metrics), not the platform's public doors.
INTERNAL_ENTRYPOINTS = frozenset({"traefik", "ping", "metrics"})
PUBLIC_ENTRYPOINTS = ("web", "websecure")
PERMANENT_REDIRECTS = frozenset({301, 308})
TEMPORARY_REDIRECTS = frozenset({302, 303, 307})
# Where Traefik's own API and dashboard answer when they are exposed.
API_PROBE_PATHS = ("/api/rawdata", "/dashboard/")
# A router that only redirects (the entrypoint redirection's) serves nothing worth limiting.
REDIRECT_ONLY_SERVICE = "noop@internal"
WEAK_TLS_VERSIONS = frozenset({"SSLv3", "TLSv1", "TLSv1.1"})

Address = tuple[str, int]


# ---------------------------------------------------------------- Traefik's API


@dataclass(frozen=True)
class Entrypoint:
    name: str
    address: str
    tls: bool
    redirect_to: str | None = None
    redirect_scheme: str | None = None
    redirect_permanent: bool = False
    middlewares: tuple[str, ...] = ()

    @property
    def port(self) -> int | None:
        """The port of `host:port` or `:port` (the /tcp or /udp suffix dropped)."""
        tail = self.address.rsplit(":", 1)[-1].split("/")[0]
        return int(tail) if tail.isdigit() else None


@dataclass(frozen=True)
class Router:
    name: str
    provider: str
    entrypoints: tuple[str, ...]
    rule: str
    service: str
    middlewares: tuple[str, ...]
    tls: bool
    status: str

    @property
    def public(self) -> bool:
        return any(e not in INTERNAL_ENTRYPOINTS for e in self.entrypoints)


@dataclass(frozen=True)
class Middleware:
    name: str
    type: str  # Traefik's lower-case type: ratelimit, stripprefix, redirectscheme...
    status: str


@dataclass(frozen=True)
class TraefikState:
    """What Traefik's API says it runs."""

    entrypoints: dict[str, Entrypoint]
    routers: dict[str, Router]
    middlewares: dict[str, Middleware]
    errors: dict[str, int] = field(default_factory=dict)  # routers/services/middlewares in error

    def public_routers(self) -> list[Router]:
        return [r for r in self.routers.values() if r.public]

    def insecure_api_routers(self) -> list[Router]:
        """The routers api.insecure=true creates: Traefik's API and dashboard with no
        authentication, on the `traefik` entrypoint (its own `api@internal` router)."""
        return [
            r
            for r in self.routers.values()
            if r.provider == "internal" and r.name in ("api@internal", "dashboard@internal")
        ]

    def middleware_types(self, router: Router) -> list[str]:
        """Types of the middlewares a request through the router passes: the entrypoints'
        own (http.middlewares) and the router's; a bare name is the router's provider's."""
        names = [
            m for e in router.entrypoints if e in self.entrypoints for m in self.entrypoints[e].middlewares
        ]
        names += router.middlewares
        types = []
        for name in names:
            qualified = name if "@" in name else f"{name}@{router.provider}"
            found = self.middlewares.get(qualified)
            types.append(found.type if found else "unknown")
        return types


def _entrypoint(data: Mapping[str, Any]) -> Entrypoint:
    http = data.get("http") or {}
    redirect = (http.get("redirections") or {}).get("entryPoint") or {}
    return Entrypoint(
        name=str(data.get("name", "")),
        address=str(data.get("address", "")),
        tls="tls" in http,
        redirect_to=redirect.get("to"),
        redirect_scheme=redirect.get("scheme"),
        redirect_permanent=bool(redirect.get("permanent")),
        middlewares=tuple(http.get("middlewares") or ()),
    )


def _router(name: str, data: Mapping[str, Any]) -> Router:
    # `using` is where Traefik attached it (a router naming no entrypoint is on all of them).
    entrypoints = data.get("using") or data.get("entryPoints") or ()
    return Router(
        name=name,
        provider=str(data.get("provider") or name.rpartition("@")[2]),
        entrypoints=tuple(entrypoints),
        rule=str(data.get("rule", "")),
        service=str(data.get("service", "")),
        middlewares=tuple(data.get("middlewares") or ()),
        tls="tls" in data,
        status=str(data.get("status", "")),
    )


def _middleware(name: str, data: Mapping[str, Any]) -> Middleware:
    kind = data.get("type")
    if not kind:  # older rawdata: the one configuration key is the type (rateLimit: {...})
        known = [k for k in data if k not in ("status", "usedBy", "name", "provider", "error")]
        kind = known[0] if known else "unknown"
    return Middleware(name=name, type=str(kind).lower(), status=str(data.get("status", "")))


async def read_state(client: httpx.AsyncClient, api: Address, timeout: float) -> TraefikState:
    """Traefik's entrypoints, its runtime HTTP configuration (/api/rawdata: every router and
    middleware, unpaginated) and the overview's error counts, read at once."""
    base = f"http://{api[0]}:{api[1]}/api"

    async def get(path: str) -> Any:
        response = await client.get(f"{base}/{path}", timeout=timeout)
        response.raise_for_status()
        return response.json()

    entrypoints, raw, overview = await asyncio.gather(get("entrypoints"), get("rawdata"), get("overview"))
    http_overview = overview.get("http") or {}
    return TraefikState(
        entrypoints={e["name"]: _entrypoint(e) for e in entrypoints},
        routers={n: _router(n, d) for n, d in (raw.get("routers") or {}).items()},
        middlewares={n: _middleware(n, d) for n, d in (raw.get("middlewares") or {}).items()},
        errors={kind: int((counts or {}).get("errors", 0)) for kind, counts in http_overview.items()},
    )


# ---------------------------------------------------------------- judging the state


def entrypoint_problems(state: TraefikState, expected_ports: Mapping[str, int]) -> list[str]:
    """Each expected entrypoint declared, listening on the port the environment says;
    websecure terminating TLS; the configuration loaded without errors."""
    problems = []
    for name, port in expected_ports.items():
        entrypoint = state.entrypoints.get(name)
        if entrypoint is None:
            problems.append(
                f"no {name} entrypoint (declared: {', '.join(sorted(state.entrypoints)) or 'none'})"
            )
        elif entrypoint.port != port:
            problems.append(
                f"entrypoint {name} listens on {entrypoint.address}, the environment says :{port}"
            )
    websecure = state.entrypoints.get("websecure")
    if websecure is not None and not websecure.tls:
        problems.append("entrypoint websecure declares no TLS (http.tls)")
    for kind, count in sorted(state.errors.items()):
        if count:
            problems.append(f"{count} {kind} in error in Traefik's configuration (see /api/overview)")
    return problems


def unlimited_routers(state: TraefikState) -> list[Router]:
    """Public routers no rateLimit middleware protects (reference plan 2.3); the
    entrypoint redirection's router, which only redirects, excepted."""
    return [
        r
        for r in state.public_routers()
        if r.service != REDIRECT_ONLY_SERVICE and "ratelimit" not in state.middleware_types(r)
    ]


# ---------------------------------------------------------------- the public entrypoints, live


def public_client(connections: int = 16) -> httpx.AsyncClient:
    """A client for the public entrypoints: any certificate accepted (module docstring), no
    redirect followed, nothing kept alive."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=0)
    return httpx.AsyncClient(verify=False, follow_redirects=False, limits=limits)


@dataclass(frozen=True)
class Handshake:
    """A TLS handshake with an entrypoint: what was negotiated, or why none was."""

    address: Address
    ok: bool
    version: str = ""
    cipher: str = ""
    subject_alt_names: tuple[str, ...] = ()
    not_after: datetime.datetime | None = None
    error: str = ""

    def describe(self) -> str:
        where = f"{self.address[0]}:{self.address[1]}"
        if not self.ok:
            return f"no TLS handshake with {where}: {self.error}"
        expiry = self.not_after.date().isoformat() if self.not_after else "?"
        names = ", ".join(self.subject_alt_names) or "no SAN"
        return (
            f"{where} negotiated {self.version} {self.cipher}; certificate for {names}, valid until {expiry}"
        )


async def tls_handshake(address: Address, timeout: float) -> Handshake:
    """A real handshake (any certificate accepted), then the certificate read with cryptography."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host, port = address
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return Handshake(address, False, error=_handshake_error(exc, timeout))
    try:
        tls: ssl.SSLObject = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True)
        names, not_after = _certificate_facts(der) if der else ((), None)
        cipher = (tls.cipher() or ("",))[0]
        return Handshake(address, True, tls.version() or "", cipher, names, not_after)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _handshake_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens there"
    if isinstance(exc, ssl.SSLError):
        # WRONG_VERSION_NUMBER and friends: something answered, but not with TLS.
        return f"the server does not speak TLS ({exc.reason or type(exc).__name__})"
    return describe_error(exc, timeout)


def _certificate_facts(der: bytes) -> tuple[tuple[str, ...], datetime.datetime | None]:
    from cryptography import x509

    certificate = x509.load_der_x509_certificate(der)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        names = ()
    return names, certificate.not_valid_after_utc


def handshake_problems(handshake: Handshake, now: datetime.datetime | None = None) -> list[str]:
    if not handshake.ok:
        return [handshake.describe()]
    problems = []
    if handshake.version in WEAK_TLS_VERSIONS:
        problems.append(f"negotiated {handshake.version}: TLS 1.2 is the minimum")
    moment = now or datetime.datetime.now(datetime.UTC)
    if handshake.not_after is not None and handshake.not_after <= moment:
        problems.append(f"its certificate expired on {handshake.not_after.date().isoformat()}")
    return problems


@dataclass(frozen=True)
class Answer:
    """What one HTTP request got: status, Location, whether the body is Traefik's own API or
    dashboard, whether it is JSON with the key a caller looks for; or the error."""

    url: str
    status: int | None = None
    location: str = ""
    traefik_api: bool = False
    json_keys: tuple[str, ...] = ()
    error: str = ""

    @property
    def reached(self) -> bool:
        return self.status is not None

    def describe(self) -> str:
        if not self.reached:
            return f"{self.url}: {self.error}"
        return f"{self.url}: {self.status}" + (f" -> {self.location}" if self.location else "")


async def request(client: httpx.AsyncClient, url: str, timeout: float, method: str = "GET") -> Answer:
    try:
        response = await client.request(method, url, timeout=timeout)
    except httpx.HTTPError as exc:
        return Answer(url, error=_request_error(exc, timeout))
    keys: tuple[str, ...] = ()
    with contextlib.suppress(ValueError):
        body = json.loads(response.content)
        keys = tuple(body) if isinstance(body, dict) else ()
    return Answer(
        url,
        response.status_code,
        response.headers.get("location", ""),
        response.status_code == 200 and _is_traefiks_own(response, keys),
        keys,
    )


def _request_error(exc: BaseException, timeout: float) -> str:
    # httpx says "All connection attempts failed"; the refusal is in the exceptions it wraps.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused: nothing listens there"
        cause = cause.__cause__ or cause.__context__
    return describe_error(exc, timeout)


def _is_traefiks_own(response: httpx.Response, keys: tuple[str, ...]) -> bool:
    """Traefik's rawdata (routers, middlewares, services) or its dashboard's page."""
    if {"routers", "services"} <= set(keys):
        return True
    text = response.text[:4000].lower() if "html" in response.headers.get("content-type", "") else ""
    return "traefik" in text or "window.apiurl" in text


def url(scheme: str, address: Address, path: str) -> str:
    return f"{scheme}://{address[0]}:{address[1]}{path}"


def redirect_problems(answer: Answer) -> list[str]:
    """web must answer a permanent redirect (301/308) to https."""
    if not answer.reached:
        return [answer.describe()]
    if answer.status in PERMANENT_REDIRECTS | TEMPORARY_REDIRECTS:
        problems = []
        if not answer.location.lower().startswith("https://"):
            problems.append(f"web redirects to {answer.location or '(no Location)'}, not to https")
        if answer.status in TEMPORARY_REDIRECTS:
            problems.append(
                f"web's redirect is temporary ({answer.status}); 301 or 308 makes browsers keep it"
            )
        return problems
    return [f"web answers {answer.status} over plain HTTP instead of redirecting to https"]


async def api_exposure(
    client: httpx.AsyncClient, public: Mapping[str, tuple[str, Address]], timeout: float
) -> list[Answer]:
    """GET Traefik's API and dashboard paths on each public entrypoint ({name: (scheme, address)})."""
    return list(
        await asyncio.gather(
            *(
                request(client, url(scheme, address, path), timeout)
                for scheme, address in public.values()
                for path in API_PROBE_PATHS
            )
        )
    )


async def through_edge(client: httpx.AsyncClient, start: str, timeout: float, method: str = "GET") -> Answer:
    """A request at the edge as a user makes it: to `start`, then (web redirecting to
    websecure) once to the https Location if it is on the same host. Each hop gets half the
    timeout, so both fit the one a caller has."""
    first = await request(client, start, timeout / 2, method)
    if first.status in PERMANENT_REDIRECTS | TEMPORARY_REDIRECTS and first.location:
        target = urlsplit(first.location)
        if target.scheme == "https" and target.hostname == urlsplit(start).hostname:
            return await request(client, first.location, timeout / 2, method)
    return first
