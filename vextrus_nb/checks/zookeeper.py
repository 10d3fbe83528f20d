"""ZooKeeper, over its own protocol: the four-letter words `ruok` and `mntr` say it is serving."""

from __future__ import annotations

import asyncio

from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check

ZOOKEEPER_SERVING_STATES = ("standalone", "leader", "follower")


async def zookeeper_word(host: str, port: int, word: str) -> str:
    """A ZooKeeper four-letter word: send it, read the answer until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(word.encode())
        await writer.drain()
        return (await reader.read()).decode(errors="replace").strip()
    finally:
        writer.close()


def mntr_values(text: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


@check(
    "INF-ZK-HEALTH",
    "infrastructure",
    "critical",
    title="ZooKeeper is serving",
    probes="the four-letter words `ruok` and `mntr` on the client port",
    criterion=f"ruok answers imok and mntr's zk_server_state is one of {', '.join(ZOOKEEPER_SERVING_STATES)}",
    remediation="Check zookeeper's log (quorum, disk under dataDir); allow ruok,mntr,srvr in "
    "4lw.commands.whitelist; restart zookeeper, then the brokers.",
)
async def zookeeper_health(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("zookeeper"):
        return Outcome.not_applicable("the environment runs no ZooKeeper")
    host, port = ctx.where["zookeeper"]
    try:
        ruok, mntr = await asyncio.gather(
            ctx.bounded(zookeeper_word(host, port, "ruok")), ctx.bounded(zookeeper_word(host, port, "mntr"))
        )
    except Exception as exc:
        detail = f"no answer to ruok/mntr: {describe_error(exc, ctx.timeout_s)}"
        return Outcome.of(detail, [Finding("zookeeper", detail)])
    metrics = mntr_values(mntr)
    state = metrics.get("zk_server_state")
    version = metrics.get("zk_version", "?").split(",")[0].split("-")[0]  # "3.8.0-<commit>, built on <date>"
    evidence = f"ruok -> {ruok or '(nothing)'}; zk_server_state {state or '?'}, version {version}"
    findings = []
    if ruok != "imok":
        findings.append(Finding("zookeeper", f"ruok answered {ruok or 'nothing'!r}, not imok"))
    if state not in ZOOKEEPER_SERVING_STATES:
        first_line = mntr.splitlines()[0] if mntr else "nothing"
        findings.append(Finding("zookeeper", f"not serving (mntr: {state or first_line})"))
    return Outcome.of(evidence, findings)
