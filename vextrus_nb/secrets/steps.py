"""The steps of secrets/rotate, in order: plan, rotate (or finish what was interrupted),
retire keys past their grace period, check. Each returns data for the notebook to show.

The evidence names credentials, fingerprints, steps, restarts and checks; every value
the run reads or makes is handed to the run's scrubber as soon as it is seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vextrus_nb.display import Shown, note
from vextrus_nb.errors import ConfigError, RunRefused
from vextrus_nb.secrets.catalogue import Credential, catalogue
from vextrus_nb.secrets.checks import CheckRow, check_credential
from vextrus_nb.secrets.protocol import RotationContext, RotationResult, retire_expired, rotate
from vextrus_nb.secrets.stores import store_for
from vextrus_nb.secrets.versions import fingerprint
from vextrus_nb.secrets.wiring import context_for, journal_for

if TYPE_CHECKING:
    import pandas as pd

    from vextrus_nb.runbook import Runbook

ALL = "all"
DRY_RUN = note("Dry run: nothing was changed. Run with `dry_run=False` to do what the plan shows.")


def _names(credentials: str | list[str]) -> list[str]:
    raw = credentials.split(",") if isinstance(credentials, str) else [str(c) for c in credentials]
    return list(dict.fromkeys(n.strip() for n in raw if n.strip()))


def validate(env_name: str, credentials: str | list[str], deadline_s: float, dry_run: bool = True) -> None:
    """Refuse bad input before anything is touched (the runner exits 2): an unknown
    credential, an environment with no store, a store that cannot be written."""
    from vextrus_nb.config import load_environment, load_inventory

    is_number = isinstance(deadline_s, int | float) and not isinstance(deadline_s, bool)
    if not is_number or not math.isfinite(deadline_s) or deadline_s <= 0:
        raise RunRefused(f"deadline_s must be a positive number of seconds, not {deadline_s!r}")
    inventory = load_inventory()
    try:
        env = load_environment(env_name, inventory)
        env.rotation_settings()
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None
    known = catalogue(env, inventory)
    names = _names(credentials)
    if not names:
        raise RunRefused(f"name the credentials to rotate (or '{ALL}'); credentials: {', '.join(known)}")
    unknown = [n for n in names if n not in known and n != ALL]
    if unknown:
        raise RunRefused(f"unknown credential(s): {', '.join(unknown)}; credentials: {', '.join(known)}")
    if not dry_run:
        try:
            store_for(env).check_writable()
        except ConfigError as exc:
            raise RunRefused(f"the secret store cannot be written, nothing was changed: {exc}") from None


@dataclass
class RotationRun:
    rb: Runbook
    credentials: list[Credential]
    ctx: RotationContext
    interrupted: list[str] = field(default_factory=list)  # names whose rotation a crash left unfinished
    results: list[RotationResult] = field(default_factory=list)
    retired: dict[str, str] = field(default_factory=dict)
    checks: list[CheckRow] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return not self.rb.dry_run


def open_rotation(rb: Runbook, credentials: str | list[str], deadline_s: float) -> RotationRun:
    """The credentials named, plus any whose rotation was interrupted (it is finished first)."""
    known = catalogue(rb.env, rb.inventory)
    names = _names(credentials)
    chosen = list(known) if ALL in names else names
    interrupted = [e.credential for e in journal_for(rb.env).interrupted() if e.credential in known]
    ordered = list(dict.fromkeys([*interrupted, *chosen]))
    ctx = context_for(rb.env, rb.inventory, rb.scrubber.add, deadline_s)
    return RotationRun(rb, [known[n] for n in ordered], ctx, interrupted)


def plan(run: RotationRun) -> pd.DataFrame:
    """What would happen to each credential. A dry run stops here."""
    import pandas as pd

    rows = []
    for credential in run.credentials:
        versions = run.ctx.store.read(credential.store_key)
        run.rb.scrubber.add(versions.values())
        entry = run.ctx.journal.load(credential.name)
        if credential.name in run.interrupted and entry is not None:
            action = f"finish the interrupted rotation {entry.rotation_id} from its '{entry.step}' step"
        else:
            action = "create, set, test, finish"
        restarts = sorted({*credential.publish_to, *credential.restart_after_finish})
        rows.append(
            {
                "credential": credential.name,
                "what": credential.what,
                "store key": credential.store_key,
                "current": fingerprint(versions.current) or "MISSING",
                "action": action,
                "restarts": ", ".join(restarts) if len(restarts) <= 3 else f"{len(restarts)} services",
            }
        )
    run.rb.summary["store"] = run.ctx.store.description
    run.rb.summary["credentials"] = [c.name for c in run.credentials]
    return pd.DataFrame(rows)


def rotate_all(run: RotationRun) -> pd.DataFrame | Shown:
    """Rotate each credential in turn; a failure is recovered and recorded, and the others go on."""
    import pandas as pd

    if not run.live:
        return DRY_RUN
    for credential in run.credentials:
        result = rotate(run.ctx, credential)
        run.results.append(result)
        if not result.ok:
            run.rb.fail(f"{credential.name}: {result.error} ({result.outcome})")
    run.rb.summary["rotated"] = {
        r.credential.name: f"{r.old_fingerprint} -> {r.new_fingerprint}" for r in run.results if r.ok
    }
    run.rb.summary["outcomes"] = {r.credential.name: r.outcome for r in run.results}
    run.rb.summary["restarts"] = {
        r.credential.name: {", ".join(x.components): x.seconds for x in r.restarts} for r in run.results
    }
    rows = [
        {
            "credential": r.credential.name,
            "step": s.step,
            "seconds": s.seconds,
            "detail": s.detail,
        }
        for r in run.results
        for s in r.steps
    ]
    return pd.DataFrame(rows)


def outcomes(run: RotationRun) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "credential": r.credential.name,
                "rotation id": r.rotation_id,
                "outcome": r.outcome,
                "resumed from": r.resumed_from,
                "old": r.old_fingerprint,
                "new": r.new_fingerprint,
                "started (UTC)": r.started_at,
                "finished (UTC)": r.finished_at,
                "error": r.error,
            }
            for r in run.results
        ]
    )


def retire(run: RotationRun) -> pd.DataFrame | Shown:
    """JWT keys whose grace period has passed stop verifying."""
    import pandas as pd

    if not run.live:
        return DRY_RUN
    for credential in run.credentials:
        retired = retire_expired(run.ctx, credential)
        if retired:
            run.retired[credential.name] = retired
    run.rb.summary["retired"] = dict(run.retired)
    if not run.retired:
        return note("No key is past its grace period: nothing was retired.")
    return pd.DataFrame([{"credential": k, "retired key": v} for k, v in run.retired.items()])


def check(run: RotationRun) -> pd.DataFrame | Shown:
    """Real logins and tokens: the new value works, the old one is refused (or still
    verifies while in its grace period), nothing pending is left, the users are healthy."""
    import pandas as pd

    if not run.live:
        return DRY_RUN
    for credential in run.credentials:
        run.checks.extend(check_credential(run.ctx, credential))
    failed = [c for c in run.checks if not c.passed]
    for row in failed:
        run.rb.fail(f"{row.credential}: {row.check}: expected {row.expected}, saw {row.observed}")
    run.rb.summary["checks_passed"] = f"{len(run.checks) - len(failed)}/{len(run.checks)}"
    return pd.DataFrame(
        [
            {
                "credential": c.credential,
                "check": c.check,
                "expected": c.expected,
                "observed": c.observed,
                "result": "passed" if c.passed else "FAILED",
            }
            for c in run.checks
        ]
    )
