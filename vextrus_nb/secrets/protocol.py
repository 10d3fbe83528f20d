"""The four-step rotation of one credential (AWS Secrets Manager's create, set, test,
finish), journalled ahead of each step so that a failure ends in one consistent state:

- a step before the finish fails: roll back (the target forgets the new value, the
  store drops its pending version), so store, target and services agree on the old value;
- the finish fails: roll forward (promote, restart, revoke again), since the target
  already accepts the new value;
- the process dies (no handler runs): the journal still says which step was in flight;
  the next run redoes that step and goes on. Every step is idempotent, so a re-run
  finishes the interrupted rotation and starts no other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from vextrus_nb.clock import now_utc
from vextrus_nb.errors import RotationError
from vextrus_nb.secrets.credential_targets import Restarted, Target, restart_and_wait
from vextrus_nb.secrets.journal import COMPLETED, ROLLED_BACK, Journal, JournalEntry
from vextrus_nb.secrets.versions import Versions, fingerprint, new_value

if TYPE_CHECKING:
    from vextrus_nb.drivers import Driver
    from vextrus_nb.secrets.catalogue import Credential
    from vextrus_nb.secrets.stores import SecretStore

STEPS = ("create", "set", "test", "finish")
StepHook = Callable[[str, str], None]  # (credential, step), called after the step's effect


@dataclass
class RotationContext:
    store: SecretStore
    journal: Journal
    driver: Driver
    target_for: Callable[[Credential], Target]
    deadline_s: float
    remember: Callable[[Iterable[str]], None]  # every value seen goes to the run's scrubber
    after_step: StepHook | None = None  # fault injection in tests: raise here to fail the step


@dataclass
class StepDone:
    step: str
    seconds: float
    detail: str


@dataclass
class RotationResult:
    credential: Credential
    rotation_id: str = ""
    outcome: str = ""  # rotated | resumed and rotated | rolled back | rolled forward | incomplete
    resumed_from: str = ""
    steps: list[StepDone] = field(default_factory=list)
    restarts: list[Restarted] = field(default_factory=list)
    old_fingerprint: str = ""
    new_fingerprint: str = ""
    error: str = ""
    started_at: str = field(default_factory=now_utc)
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("rotated", "resumed and rotated")


def rotate(ctx: RotationContext, credential: Credential) -> RotationResult:
    """Rotate one credential, or finish its interrupted rotation."""
    result = RotationResult(credential)
    key = credential.store_key
    entry = ctx.journal.load(credential.name)
    versions = ctx.store.read(key)
    ctx.remember(versions.values())
    if entry is not None and entry.in_progress:
        start = STEPS.index(entry.step) + (1 if entry.step_done else 0)
        result.resumed_from = entry.step
    else:
        if versions.current is None:
            raise RotationError(f"{ctx.store.description} holds no current value for '{key}'")
        if versions.pending is not None:  # left by something other than a journalled rotation
            ctx.store.write(key, versions.with_pending(None))
        entry = JournalEntry(
            credential.name,
            current_fingerprint=fingerprint(versions.current),
            # the previous key's grace period outlives a rotation that is rolled back
            retire_previous_after=entry.retire_previous_after if entry is not None else "",
        )
        ctx.journal.save(entry)
        start = 0
    result.rotation_id = entry.rotation_id
    result.old_fingerprint = entry.current_fingerprint
    step = STEPS[min(start, len(STEPS) - 1)]
    try:
        for step in STEPS[start:]:
            entry.step, entry.step_done = step, False
            ctx.journal.save(entry)
            began = time.monotonic()
            detail = _STEPS[step](ctx, credential, entry, result)
            if ctx.after_step is not None:
                ctx.after_step(credential.name, step)
            entry.step_done = True
            ctx.journal.save(entry)
            result.steps.append(StepDone(step, round(time.monotonic() - began, 2), detail))
        result.outcome = "resumed and rotated" if result.resumed_from else "rotated"
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        result.error = f"{step} failed: {reason}"
        result.steps.append(StepDone(step, 0.0, f"FAILED: {reason}"))
        _recover(ctx, credential, entry, result, step)
    result.new_fingerprint = entry.pending_fingerprint if result.outcome != "rolled back" else ""
    if result.outcome != "incomplete":
        entry.status = ROLLED_BACK if result.outcome == "rolled back" else COMPLETED
        entry.finished_at = result.finished_at = now_utc()
        ctx.journal.save(entry)
    return result


def _recover(
    ctx: RotationContext, credential: Credential, entry: JournalEntry, result: RotationResult, step: str
) -> None:
    try:
        if step == "finish":
            began = time.monotonic()
            detail = _finish(ctx, credential, entry, result)
            result.steps.append(
                StepDone("finish (rolled forward)", round(time.monotonic() - began, 2), detail)
            )
            result.outcome = "rolled forward"
        else:
            began = time.monotonic()
            detail = rollback(ctx, credential)
            result.steps.append(StepDone("rollback", round(time.monotonic() - began, 2), detail))
            result.outcome = "rolled back"
    except Exception as exc:
        result.outcome = "incomplete"
        result.error += (
            f"; recovering failed too ({exc}): the journal keeps the rotation, a re-run finishes it"
        )


def rollback(ctx: RotationContext, credential: Credential) -> str:
    """The target forgets the pending value and the store drops it: back to the current one."""
    versions = ctx.store.read(credential.store_key)
    if versions.pending is None:
        return "nothing pending: the store and the target hold the current value"
    ctx.store.write(credential.store_key, versions.with_pending(None))
    ctx.target_for(credential).undo(versions.pending, versions.current, versions.previous)
    return "the pending value was withdrawn from the target and the store"


def _create(ctx: RotationContext, credential: Credential, entry: JournalEntry, result: RotationResult) -> str:
    versions = ctx.store.read(credential.store_key)
    if versions.pending is not None:  # written before a crash: keep it, it may already be set
        entry.pending_fingerprint = fingerprint(versions.pending)
        return f"pending version {entry.pending_fingerprint} already in the store"
    value = credential.next_value(versions.current, new_value(credential.kind))
    ctx.remember([value])
    ctx.store.write(credential.store_key, versions.with_pending(value))
    entry.pending_fingerprint = fingerprint(value)
    return f"pending version {entry.pending_fingerprint} written to {ctx.store.description}"


def _pending(ctx: RotationContext, credential: Credential, entry: JournalEntry) -> str:
    versions = ctx.store.read(credential.store_key)
    if versions.pending is None or fingerprint(versions.pending) != entry.pending_fingerprint:
        raise RotationError(
            f"the store lost the pending version {entry.pending_fingerprint} of '{credential.name}'"
        )
    return versions.pending


def _set(ctx: RotationContext, credential: Credential, entry: JournalEntry, result: RotationResult) -> str:
    published = ctx.target_for(credential).apply(_pending(ctx, credential, entry))
    if isinstance(published, Restarted):  # the JWT key: its verifiers restarted to learn it
        result.restarts.append(published)
        return (
            f"published {entry.pending_fingerprint} as verify-only to {len(credential.publish_to)} services "
            f"(restarted and healthy in {published.seconds:g} s)"
        )
    return f"{credential.what} now accepts {entry.pending_fingerprint}"


def _test(ctx: RotationContext, credential: Credential, entry: JournalEntry, result: RotationResult) -> str:
    if not ctx.target_for(credential).accepts(_pending(ctx, credential, entry)):
        raise RotationError(f"{credential.what} refused the new value {entry.pending_fingerprint}")
    return (
        f"logged in with {entry.pending_fingerprint}"
        if credential.kind != "jwt"
        else (f"every service verified a token signed with {entry.pending_fingerprint}")
    )


def _finish(ctx: RotationContext, credential: Credential, entry: JournalEntry, result: RotationResult) -> str:
    key = credential.store_key
    versions = ctx.store.read(key)
    if versions.pending is not None:
        if fingerprint(versions.current) == entry.pending_fingerprint:  # promoted before a crash
            ctx.store.write(key, Versions(current=versions.current, previous=versions.previous))
        else:
            ctx.store.write(key, versions.promoted())
    versions = ctx.store.read(key)
    if fingerprint(versions.current) != entry.pending_fingerprint:
        raise RotationError(
            f"the store's current version of '{credential.name}' is not {entry.pending_fingerprint}"
        )
    restarted = restart_and_wait(ctx.driver, list(credential.restart_after_finish), ctx.deadline_s)
    result.restarts.append(restarted)
    if versions.previous is not None:
        # current is set: its fingerprint matched the pending one just above
        ctx.target_for(credential).revoke(versions.previous, versions.current)  # type: ignore[arg-type]
    if credential.kind == "jwt":
        retire_at = datetime.now(UTC) + timedelta(seconds=credential.grace_s)
        entry.retire_previous_after = retire_at.isoformat(timespec="seconds")
        return (
            f"{credential.owner} signs with {entry.pending_fingerprint} (restarted, healthy in "
            f"{restarted.seconds:g} s); the old key verifies until {entry.retire_previous_after}"
        )
    return (
        f"current is {entry.pending_fingerprint}; {', '.join(restarted.components)} restarted and healthy "
        f"in {restarted.seconds:g} s; the old value is revoked"
    )


_STEPS: dict[str, Callable[[RotationContext, Credential, JournalEntry, RotationResult], str]] = {
    "create": _create,
    "set": _set,
    "test": _test,
    "finish": _finish,
}


def retire_expired(ctx: RotationContext, credential: Credential, now: datetime | None = None) -> str | None:
    """A JWT key past its grace period stops verifying: dropped from the store, the
    verifiers restarted. None when there is nothing to retire."""
    if credential.kind != "jwt":
        return None
    entry = ctx.journal.load(credential.name)
    versions = ctx.store.read(credential.store_key)
    if entry is None or entry.in_progress or versions.previous is None or not entry.retire_previous_after:
        return None
    if (now or datetime.now(UTC)) < datetime.fromisoformat(entry.retire_previous_after):
        return None
    ctx.remember(versions.values())
    retired = fingerprint(versions.previous)
    ctx.store.write(credential.store_key, versions.without_previous())
    restart_and_wait(ctx.driver, list(credential.publish_to), ctx.deadline_s)
    entry.retire_previous_after = ""
    entry.note = f"retired {retired} at {now_utc()}"
    ctx.journal.save(entry)
    return retired
