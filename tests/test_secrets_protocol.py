"""The four-step rotation on the real sandbox, in process, with a fault at each step.

For each credential kind (a PostgreSQL role, a Redis ACL user, the JWT signing key)
and each step (create, set, test, finish) two faults are injected right after the
step has had its effect:

- an error: the rotation recovers at once (rolled back before the finish, rolled
  forward at the finish) and the system is consistent;
- a crash (a BaseException no handler catches, as if the process died): the journal
  keeps the step in flight; the next rotation finishes it with the same pending value.

"Consistent" is checked with real logins and real tokens: the store's current value
works, the old one and the withdrawn one are refused (the old JWT key verifies only
in its grace period), nothing is pending, no rotation is left open, and every service
that uses the credential is healthy.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.sandbox_state import SandboxState
from vextrus_nb.secrets.catalogue import Credential, catalogue
from vextrus_nb.secrets.checks import check_credential
from vextrus_nb.secrets.protocol import STEPS, RotationContext, retire_expired, rotate
from vextrus_nb.secrets.versions import fingerprint
from vextrus_nb.secrets.wiring import context_for

CREDENTIAL_OF_KIND = {
    "postgres": "auth-db",  # single user
    "postgres-alternating": "finance-db",  # sandbox.yaml: rotation.alternating_users
    "redis": "auth-redis",
    "jwt": "jwt-signing",
}


class InjectedError(Exception):
    pass


class SimulatedCrash(BaseException):
    """Not an Exception: no handler in the protocol catches it, as when the process dies."""

    pass


class Rig:
    """A rotation context on the sandbox that remembers every value it sees."""

    def __init__(self) -> None:
        inventory = load_inventory()
        self.env = load_environment("sandbox", inventory)
        self.credentials = catalogue(self.env, inventory)
        self.seen: set[str] = set()
        self.fault: tuple[str, type[BaseException]] | None = None
        self.pending_at_fault: str | None = None
        self.ctx: RotationContext = context_for(
            self.env, inventory, self.seen.update, deadline_s=60, after_step=self._after_step
        )

    def _after_step(self, credential: str, step: str) -> None:
        if self.fault is not None and self.fault[0] == step:
            # the new value: pending, or current once the finish has promoted it
            versions = self.ctx.store.read(self.credentials[credential].store_key)
            self.pending_at_fault = versions.pending if step != "finish" else versions.current
            raise self.fault[1](f"injected after the {step} step")

    def assert_consistent(self, credential: Credential, withdrawn: str | None = None) -> None:
        failed = [r for r in check_credential(self.ctx, credential) if not r.passed]
        assert not failed, [(r.check, r.expected, r.observed) for r in failed]
        entry = self.ctx.journal.load(credential.name)
        assert entry is not None and not entry.in_progress, entry
        if withdrawn is not None:
            assert not self.ctx.target_for(credential).accepts(withdrawn), "a withdrawn value still works"

    def assert_no_value_in(self, *texts: str) -> None:
        leaked = [t for t in texts if any(value in t for value in self.seen)]
        assert not leaked, "a secret value reached the evidence"


@pytest.fixture
def rig(sandbox: SandboxState) -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.fault = None
    for credential in rig.credentials.values():  # leave no rotation open for the next test
        entry = rig.ctx.journal.load(credential.name)
        if entry is not None and entry.in_progress:
            rotate(rig.ctx, credential)


def evidence(result: object) -> str:
    return repr(result)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("kind", list(CREDENTIAL_OF_KIND))
def test_an_error_at_each_step_ends_consistent_and_a_rerun_rotates(rig: Rig, kind: str, step: str) -> None:
    credential = rig.credentials[CREDENTIAL_OF_KIND[kind]]
    before = rig.ctx.store.read(credential.store_key).current
    rig.fault = (step, InjectedError)

    failed = rotate(rig.ctx, credential)

    assert not failed.ok and f"{step} failed: injected" in failed.error
    rig.assert_no_value_in(evidence(failed))
    if step == "finish":  # the target already took the new value: go forward
        assert failed.outcome == "rolled forward", failed
        assert rig.ctx.store.read(credential.store_key).current == rig.pending_at_fault
        rig.assert_consistent(credential)
    else:
        assert failed.outcome == "rolled back", failed
        assert rig.ctx.store.read(credential.store_key).current == before
        rig.assert_consistent(credential, withdrawn=rig.pending_at_fault)

    rig.fault = None
    again = rotate(rig.ctx, credential)
    assert again.ok and again.outcome == "rotated", again
    rig.assert_no_value_in(evidence(again))
    rig.assert_consistent(credential)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("kind", list(CREDENTIAL_OF_KIND))
def test_a_crash_at_each_step_is_finished_by_the_next_run(rig: Rig, kind: str, step: str) -> None:
    credential = rig.credentials[CREDENTIAL_OF_KIND[kind]]
    rig.fault = (step, SimulatedCrash)
    with pytest.raises(SimulatedCrash):
        rotate(rig.ctx, credential)
    entry = rig.ctx.journal.load(credential.name)
    assert entry is not None and entry.in_progress and entry.step == step and not entry.step_done

    rig.fault = None
    resumed = rotate(rig.ctx, credential)
    assert resumed.outcome == "resumed and rotated" and resumed.resumed_from == step, resumed
    assert resumed.rotation_id == entry.rotation_id
    assert resumed.new_fingerprint == fingerprint(rig.pending_at_fault)
    assert rig.ctx.store.read(credential.store_key).current == rig.pending_at_fault
    rig.assert_no_value_in(evidence(resumed))
    rig.assert_consistent(credential)

    # Finished: the journal holds nothing open, so the next run starts a new rotation.
    assert rig.ctx.journal.interrupted() == []


def test_alternating_users_keep_the_old_login_working_throughout(rig: Rig) -> None:
    credential = rig.credentials["finance-db"]
    target = rig.ctx.target_for(credential)
    old_login_works: dict[str, bool] = {}
    old = rig.ctx.store.read(credential.store_key).current
    assert old is not None

    def probe(name: str, step: str) -> None:
        old_login_works[step] = target.accepts(old)

    rig.ctx.after_step = probe
    assert rotate(rig.ctx, credential).ok
    assert old_login_works == dict.fromkeys(STEPS, True), old_login_works
    first = rig.ctx.store.read(credential.store_key).current
    assert first is not None and target.accepts(old)
    assert credential.login_of(first)[0] != credential.login_of(old)[0], "the roles did not alternate"

    # The next rotation goes back to the first role with a new password: the login of two
    # rotations ago stops working, the last one still works.
    rig.ctx.after_step = None
    assert rotate(rig.ctx, credential).ok
    second = rig.ctx.store.read(credential.store_key).current
    assert second is not None and credential.login_of(second)[0] == credential.login_of(old)[0]
    assert target.accepts(second) and target.accepts(first) and not target.accepts(old)
    rig.assert_consistent(credential)


def test_the_old_jwt_key_verifies_through_its_grace_period_then_is_retired(rig: Rig) -> None:
    credential = rig.credentials["jwt-signing"]
    target = rig.ctx.target_for(credential)
    old = rig.ctx.store.read(credential.store_key).current
    assert old is not None

    rotated = rotate(rig.ctx, credential)
    assert rotated.ok, rotated
    new = rig.ctx.store.read(credential.store_key).current
    assert target.accepts(new) and target.accepts(old), "a token signed before the rotation was cut off"
    assert retire_expired(rig.ctx, credential) is None, "retired before its grace period ended"

    after_grace = datetime.now(UTC) + timedelta(seconds=credential.grace_s + 1)
    assert retire_expired(rig.ctx, credential, now=after_grace) == fingerprint(old)
    assert target.accepts(new) and not target.accepts(old)
    assert rig.ctx.store.read(credential.store_key).previous is None
    rig.assert_consistent(credential)
