"""Traefik's live configuration, read from its API: entrypoints, TLS, the HTTP redirect,
whether the API is exposed, rate limiting on public routers (reference plan, 2.3); and whether
the platform is reachable through it (/api/<service> and /graphql).

Endpoints: `where["traefik"]` is Traefik's internal entrypoint (ping, API, metrics: the
inventory's traefik port), `where["traefik-web"]` and `where["traefik-websecure"]` its public
ones (config.EDGE_ENTRYPOINTS). Every finding about Traefik itself names `traefik`; a route that
does not reach its service names the service.
"""

from __future__ import annotations

import asyncio

from vextrus_nb import edge
from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check
from vextrus_nb.config import Component

TRAEFIK = "traefik"
WEB, WEBSECURE = "traefik-web", "traefik-websecure"


def _not_here(ctx: CheckContext) -> Outcome | None:
    """Not applicable where no real Traefik runs: out of scope, or declared simulated."""
    if not ctx.in_scope(TRAEFIK):
        return Outcome.not_applicable("the environment runs no Traefik")
    if TRAEFIK in ctx.env.simulated:
        return Outcome.not_applicable("Traefik is simulated in this environment: it has no live API")
    return None


def _address(ctx: CheckContext, name: str) -> edge.Address | None:
    return ctx.where.get(name)


def _no_address(name: str) -> Finding:
    return Finding(TRAEFIK, f"the environment gives no address for {name} (ports: {name})")


async def _state(ctx: CheckContext) -> edge.TraefikState:
    """Traefik's API read once per run, whichever checks ask (a shared task)."""
    api = ctx.where[TRAEFIK]
    task = ctx.once("traefik-state", lambda: asyncio.ensure_future(ctx.bounded(_read(ctx, api))))
    return await task


async def _read(ctx: CheckContext, api: edge.Address) -> edge.TraefikState:
    return await edge.read_state(ctx.client, api, ctx.timeout_s)


def _unreadable(ctx: CheckContext, exc: BaseException) -> Finding:
    host, port = ctx.where[TRAEFIK]
    return Finding(TRAEFIK, f"its API at {host}:{port} did not answer: {describe_error(exc, ctx.timeout_s)}")


@check(
    "SEC-TRAEFIK-ENTRYPOINTS",
    "security",
    "high",
    title="Traefik runs the expected entrypoints",
    probes="Traefik's API: /api/entrypoints and /api/overview",
    criterion="web, websecure and the internal traefik entrypoint are declared on the environment's "
    "ports, websecure declares TLS, and no router, service or middleware is in error",
    remediation="Declare entryPoints web (:80), websecure (:443, http.tls) and traefik (:8080, ping and "
    "API only); fix the routers /api/overview reports in error.",
)
async def traefik_entrypoints(ctx: CheckContext) -> Outcome:
    if (skip := _not_here(ctx)) is not None:
        return skip
    findings = []
    expected = {"traefik": ctx.where[TRAEFIK][1]}
    for entrypoint, name in (("web", WEB), ("websecure", WEBSECURE)):
        address = _address(ctx, name)
        if address is None:
            findings.append(_no_address(name))
        else:
            expected[entrypoint] = address[1]
    try:
        state = await _state(ctx)
    except Exception as exc:
        return Outcome.of("Traefik's API unreadable", [*findings, _unreadable(ctx, exc)])
    findings += [Finding(TRAEFIK, p) for p in edge.entrypoint_problems(state, expected)]
    declared = ", ".join(
        f"{e.name} {e.address}{' (tls)' if e.tls else ''}" for e in state.entrypoints.values()
    )
    return Outcome.of(f"entrypoints: {declared or 'none'}", findings)


@check(
    "SEC-TRAEFIK-TLS-LIVE",
    "security",
    "critical",
    title="Traefik's websecure entrypoint completes a TLS handshake",
    probes="a TLS handshake with the websecure entrypoint (any certificate accepted)",
    criterion="the handshake completes with TLS 1.2 or later and an unexpired certificate",
    remediation="Give websecure `http.tls` with a certificate (certresolver or tls.certificates); the "
    "reference's 'Traefik insecure mode: no SSL' is critical gap 7.",
)
async def traefik_tls_live(ctx: CheckContext) -> Outcome:
    if (skip := _not_here(ctx)) is not None:
        return skip
    address = _address(ctx, WEBSECURE)
    if address is None:
        return Outcome.of("no websecure address", [_no_address(WEBSECURE)])
    handshake = await ctx.bounded(edge.tls_handshake(address, ctx.timeout_s))
    problems = edge.handshake_problems(handshake)
    return Outcome.of(handshake.describe(), [Finding(TRAEFIK, p) for p in problems])


@check(
    "SEC-TRAEFIK-REDIRECT",
    "security",
    "high",
    title="Traefik redirects plain HTTP to HTTPS",
    probes="GET / on the web entrypoint, redirects not followed",
    criterion="a permanent redirect (301 or 308) whose Location is https",
    remediation="Set entryPoints.web.http.redirections.entryPoint (to: websecure, scheme: https, "
    "permanent: true).",
)
async def traefik_redirect(ctx: CheckContext) -> Outcome:
    if (skip := _not_here(ctx)) is not None:
        return skip
    address = _address(ctx, WEB)
    if address is None:
        return Outcome.of("no web address", [_no_address(WEB)])
    async with edge.public_client() as client:
        answer = await ctx.bounded(edge.request(client, edge.url("http", address, "/"), ctx.timeout_s))
    return Outcome.of(answer.describe(), [Finding(TRAEFIK, p) for p in edge.redirect_problems(answer)])


@check(
    "SEC-TRAEFIK-API-EXPOSED",
    "security",
    "critical",
    title="Traefik's API and dashboard are not exposed",
    probes="GET /api/rawdata and /dashboard/ on the web and websecure entrypoints; Traefik's routers "
    "(api.insecure creates api@internal)",
    criterion="neither path answers 200 with Traefik's own API or dashboard on a public entrypoint, "
    "and the API is not in insecure mode",
    remediation="Set api.insecure=false; reach the API only on the internal traefik entrypoint, or through "
    "a router with authentication (basicAuth, forwardAuth to auth) on websecure.",
)
async def traefik_api_exposed(ctx: CheckContext) -> Outcome:
    if (skip := _not_here(ctx)) is not None:
        return skip
    public = {}
    for entrypoint, name, scheme in (("web", WEB, "http"), ("websecure", WEBSECURE, "https")):
        if (address := _address(ctx, name)) is not None:
            public[entrypoint] = (scheme, address)
    async with edge.public_client() as client:
        answers, state = await asyncio.gather(
            ctx.bounded(edge.api_exposure(client, public, ctx.timeout_s)), _state(ctx), return_exceptions=True
        )
    findings = []
    if isinstance(answers, BaseException):
        findings.append(Finding(TRAEFIK, f"public entrypoints: {describe_error(answers, ctx.timeout_s)}"))
        answers = []
    for answer in answers:
        if answer.traefik_api:
            findings.append(Finding(TRAEFIK, f"{answer.url} serves Traefik's own API/dashboard to anyone"))
    if isinstance(state, BaseException):
        findings.append(_unreadable(ctx, state))
    else:
        for router in state.insecure_api_routers():
            findings.append(
                Finding(
                    TRAEFIK,
                    f"api.insecure=true: router {router.name} serves the API/dashboard without "
                    f"authentication on {', '.join(router.entrypoints)}",
                )
            )
    evidence = "; ".join(a.describe() for a in answers) or "no public entrypoint to ask"
    return Outcome.of(evidence, findings)


@check(
    "SEC-TRAEFIK-RATELIMIT",
    "security",
    "high",
    title="Every public Traefik router is rate limited",
    probes="Traefik's API: /api/rawdata routers and middlewares, /api/entrypoints",
    criterion="each router on a public entrypoint passes a rateLimit middleware (its own or its "
    "entrypoint's); the redirect-only router excepted",
    remediation="Add a rateLimit middleware (reference plan 2.3: average 100, burst 50) to every public "
    "router, or to the websecure entrypoint's http.middlewares.",
)
async def traefik_ratelimit(ctx: CheckContext) -> Outcome:
    if (skip := _not_here(ctx)) is not None:
        return skip
    try:
        state = await _state(ctx)
    except Exception as exc:
        return Outcome.of("Traefik's API unreadable", [_unreadable(ctx, exc)])
    public = state.public_routers()
    unlimited = edge.unlimited_routers(state)
    findings = [
        Finding(
            TRAEFIK,
            f"router {r.name} ({r.rule}) on {', '.join(r.entrypoints)} has no rateLimit middleware",
        )
        for r in unlimited
    ]
    evidence = f"{len(public)} public router(s), {len(unlimited)} without a rate limit"
    return Outcome.of(evidence, findings)


def _route_problem(answer: edge.Answer, wanted_key: str) -> str | None:
    """None when the service itself answered (its JSON, whatever its health); else why not."""
    if answer.reached and wanted_key in answer.json_keys:
        return None
    if not answer.reached:
        return answer.describe()
    why = {404: "no route", 429: "rate limited", 502: "Traefik could not reach it", 503: "no server up"}
    return f"{answer.describe()} ({why.get(answer.status or 0, 'not the service answering')})"


@check(
    "SVC-ROUTED",
    "services",
    "high",
    title="Every service is reachable through Traefik",
    probes="GET /api/<service>/health and /graphql at the web entrypoint, following its redirect to "
    "websecure",
    criterion="each service's own health answer (Terminus JSON) comes back through /api/<service>/health, "
    "and the gateway's GraphQL answer through /graphql",
    remediation="Check Traefik's router for the service (/api/http/routers: rule, status, errors) and "
    "that its loadBalancer URL points at the service's port.",
)
async def services_routed(ctx: CheckContext) -> Outcome:
    if (skip := _not_here(ctx)) is not None:
        return skip
    services = ctx.services()
    if not services:
        return Outcome.not_applicable("the environment runs no service")
    web, websecure = _address(ctx, WEB), _address(ctx, WEBSECURE)
    if web is None and websecure is None:
        return Outcome.of("no public entrypoint", [_no_address(WEB)])
    # websecure is set when web is not: both None returned above, in a form mypy cannot follow
    start = edge.url("http", web, "") if web else edge.url("https", websecure, "")  # type: ignore[arg-type]
    gateway: Component | None = next((s for s in services if s.subgraphs), None)
    wanted = [(s.name, f"/api/{s.name}/health", "status") for s in services]
    if gateway is not None:
        wanted.append((gateway.name, "/graphql", "data"))
    async with edge.public_client(connections=len(wanted)) as client:
        answers = await asyncio.gather(
            *(ctx.bounded(edge.through_edge(client, start + path, ctx.timeout_s)) for _, path, _ in wanted)
        )
    if not any(a.reached for a in answers):
        return Outcome.of(
            "the edge did not answer", [Finding(TRAEFIK, f"no answer at {answers[0].describe()}")]
        )
    findings = []
    for (name, path, key), answer in zip(wanted, answers, strict=True):
        problem = _route_problem(answer, key)
        if problem is not None:
            findings.append(Finding(name, f"{path} through traefik: {problem}"))
    routed = len(wanted) - len(findings)
    return Outcome.of(f"{routed} of {len(wanted)} route(s) reach their service through {start}", findings)
