"""The steps of secrets/rotate, in order: plan, rotate (or finish what was interrupted),
retire keys past their grace period, check. Each returns data for the notebook to show.

The evidence names credentials, fingerprints, steps, restarts and checks; every value
the run reads or makes is handed to the run's scrubber as soon as it is seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vextrus_nb.display import Shown, note, styled_table
from vextrus_nb.errors import ConfigError, RunRefused
from vextrus_nb.secrets.catalogue import Credential, catalogue
from vextrus_nb.secrets.checks import CheckRow, check_credential
from vextrus_nb.secrets.protocol import RotationContext, RotationResult, retire_expired, rotate
from vextrus_nb.secrets.stores import store_for
from vextrus_nb.secrets.versions import fingerprint
from vextrus_nb.secrets.wiring import context_for, journal_for

if TYPE_CHECKING:
    from vextrus_nb.config import Environment
    from vextrus_nb.run.session import Runbook

ALL = "all"
DRY_RUN = note("Dry run: nothing was changed. Run with `dry_run=False` to do what the plan shows.")


def _table(rows: Sequence[Mapping[str, object]]) -> Shown:
    """Whole cells in both forms: a plain-text reader (grep, a raw .ipynb) sees no '...'."""
    import pandas as pd

    return styled_table(pd.DataFrame(rows).style.hide(axis="index"))


def _who(components: list[str]) -> str:
    return ", ".join(components) if len(components) <= 3 else f"{len(components)} services"


def _names(credentials: str | list[str]) -> list[str]:
    raw = credentials.split(",") if isinstance(credentials, str) else [str(c) for c in credentials]
    return list(dict.fromkeys(n.strip() for n in raw if n.strip()))


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad input before anything is touched (the runner exits 2, before a kernel): an
    unknown credential, an environment with no store, a store that cannot be written."""
    from vextrus_nb.config import load_inventory

    credentials, deadline_s = parameters.get("rotate", ""), parameters.get("deadline_s", 60.0)
    dry_run = parameters.get("dry_run", True)
    is_number = isinstance(deadline_s, int | float) and not isinstance(deadline_s, bool)
    if not is_number or not math.isfinite(deadline_s) or deadline_s <= 0:
        raise RunRefused(f"deadline_s must be a positive number of seconds, not {deadline_s!r}")
    inventory = load_inventory()
    try:
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


def open_rotation(rb: Runbook) -> RotationRun:
    """The credentials named, plus any whose rotation was interrupted (it is finished first)."""
    known = catalogue(rb.env, rb.inventory)
    names = _names(rb.parameters.get("rotate", ""))
    deadline_s = rb.parameters.get("deadline_s", 60.0)
    chosen = list(known) if ALL in names else names
    interrupted = [e.credential for e in journal_for(rb.env).interrupted() if e.credential in known]
    ordered = list(dict.fromkeys([*interrupted, *chosen]))
    ctx = context_for(rb.env, rb.inventory, rb.scrubber.add, deadline_s)
    return RotationRun(rb, [known[n] for n in ordered], ctx, interrupted)


def plan(run: RotationRun) -> Shown:
    """What would happen to each credential. A dry run stops here."""
    rows = []
    for credential in run.credentials:
        versions = run.ctx.store.read(credential.store_key)
        run.rb.scrubber.add(versions.values())
        entry = run.ctx.journal.load(credential.name)
        if credential.name in run.interrupted and entry is not None:
            action = f"finish the interrupted rotation {entry.rotation_id} from its '{entry.step}' step"
        else:
            action = "create, set, test, finish"
        rows.append(
            {
                "credential": credential.name,
                "what": credential.what,
                "store key": credential.store_key,
                "current": fingerprint(versions.current) or "MISSING",
                "action": action,
                "restarts": _who(sorted({*credential.publish_to, *credential.restart_after_finish})),
            }
        )
    run.rb.summary["store"] = run.ctx.store.description
    run.rb.summary["credentials"] = [c.name for c in run.credentials]
    return _table(rows)


def rotate_all(run: RotationRun) -> Shown:
    """Rotate each credential in turn; a failure is recovered and recorded, and the others go on."""
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
        r.credential.name: {_who(x.components): x.seconds for x in r.restarts} for r in run.results
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
    return _table(rows)


def outcomes(run: RotationRun) -> Shown:
    """Each rotation's id, outcome and fingerprints; a sentence when nothing was rotated."""
    if not run.results:
        return note("Nothing was rotated, so there are no outcomes.")
    return _table(
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


def retire(run: RotationRun) -> Shown:
    """JWT keys whose grace period has passed stop verifying."""
    if not run.live:
        return DRY_RUN
    for credential in run.credentials:
        retired = retire_expired(run.ctx, credential)
        if retired:
            run.retired[credential.name] = retired
    run.rb.summary["retired"] = dict(run.retired)
    if not run.retired:
        return note("No key is past its grace period: nothing was retired.")
    return _table([{"credential": k, "retired key": v} for k, v in run.retired.items()])


def check(run: RotationRun) -> Shown:
    """Real logins and tokens: the new value works, the old one is refused (or still
    verifies while in its grace period), nothing pending is left, the users are healthy."""
    if not run.live:
        return DRY_RUN
    for credential in run.credentials:
        run.checks.extend(check_credential(run.ctx, credential))
    failed = [c for c in run.checks if not c.passed]
    for row in failed:
        run.rb.fail(f"{row.credential}: {row.check}: expected {row.expected}, saw {row.observed}")
    run.rb.summary["checks_passed"] = f"{len(run.checks) - len(failed)}/{len(run.checks)}"
    return _table(
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


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(declared.Figure("checks_passed", "checks passed"),),
)
