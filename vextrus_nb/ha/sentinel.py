"""Redis Sentinel, read and driven through its own commands (redis-py): which primary each
Sentinel believes in, whether they have a quorum to fail over, and a failover asked for."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import redis

from vextrus_nb.errors import SentinelError


@dataclass(frozen=True)
class SentinelVote:
    sentinel: str  # host:port of the Sentinel asked
    primary: str | None  # host:port it names as primary, None if it did not answer
    quorum_ok: bool
    detail: str


@dataclass(frozen=True)
class SentinelView:
    service: str  # the monitored primary's name (`sentinel monitor <name> ...`)
    votes: list[SentinelVote]

    def answering(self) -> list[SentinelVote]:
        return [v for v in self.votes if v.primary is not None]

    def agreed_primary(self) -> str | None:
        """The primary a majority of all configured Sentinels name, else None."""
        named = Counter(v.primary for v in self.answering())
        if not named:
            return None
        primary, count = named.most_common(1)[0]
        return primary if count > len(self.votes) // 2 else None

    def has_quorum(self) -> bool:
        return any(v.quorum_ok for v in self.answering()) and self.agreed_primary() is not None


def _client(address: str, timeout_s: float) -> redis.Redis:
    host, port = address.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def view(sentinels: list[str], service: str, timeout_s: float = 2.0) -> SentinelView:
    """Ask every Sentinel which primary it follows and whether CKQUORUM holds."""
    votes = []
    for address in sentinels:
        try:
            client = _client(address, timeout_s)
            # Raw replies (the subcommand as its own argument): redis-py 5's Sentinel reply parsers
            # fail on a plain client ("unexpected keyword argument 'once'").
            reply = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", service)
            if not reply:
                raise ValueError(f"monitors no {service}")
            host, port = (part.decode() if isinstance(part, bytes) else str(part) for part in reply)
            try:
                client.execute_command("SENTINEL", "CKQUORUM", service)
                quorum_ok, detail = True, "quorum reachable"
            except redis.ResponseError as exc:
                quorum_ok, detail = False, str(exc)
            votes.append(SentinelVote(address, f"{host}:{port}", quorum_ok, detail))
        except (redis.RedisError, TypeError, ValueError) as exc:
            votes.append(SentinelVote(address, None, False, f"no answer: {type(exc).__name__}: {exc}"))
    return SentinelView(service, votes)


def failover(sentinels: list[str], service: str, timeout_s: float = 30.0) -> str:
    """`SENTINEL FAILOVER` on the first Sentinel that takes it, then wait until a majority name
    a new primary; returns it. Sentinel needs no quorum for a requested failover, so this refuses
    first when the Sentinels do not agree (a split view would promote behind the others' backs)."""
    before = view(sentinels, service)
    old = before.agreed_primary()
    if old is None:
        raise SentinelError(f"the Sentinels do not agree on a primary for {service}: {_votes(before)}")
    for vote in before.answering():
        try:
            _client(vote.sentinel, 2.0).execute_command("SENTINEL", "FAILOVER", service)
            break
        except redis.RedisError:
            continue
    else:
        raise SentinelError(f"no Sentinel accepted SENTINEL FAILOVER {service}: {_votes(before)}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = view(sentinels, service).agreed_primary()
        if now is not None and now != old:
            return now
        time.sleep(0.1)
    raise SentinelError(f"no new primary for {service} within {timeout_s:g} s (still {old})")


def _votes(current: SentinelView) -> str:
    return "; ".join(f"{v.sentinel}: {v.primary or v.detail}" for v in current.votes)
