"""The steps of notebooks/dr/restore.ipynb: verify, restore into scratch and prove.

Two kinds of restore. A backup set's logical dumps restore service databases one by one (a
live restore, `target="live"`, `dry_run=false`, `confirm` in production, swaps the proven copy
in, keeping the old database). A point-in-time restore (`target_time=<ISO 8601>` or
`target="latest"`) restores the whole cluster with pgBackRest into a scratch data directory on
a free port, recovered to that moment, and proves it against the live cluster; it is never
swapped in by this runbook (refused with `target="live"`: see the notebook's header).

`repo` (a point-in-time restore's): 1, the backup directory's repository, or 2, the S3 one
(backup.pgbackrest.s3), which outlives the database host.

`datastores` (comma-separated, default "postgres") adds the set's other datastores: redis,
objects (the platform bucket's objects) and kafka (topic configuration and group offsets),
each restored into scratch and proven, or swapped in with `target="live"`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb.backup import datastores, pgbackrest, pitr
from vextrus_nb.backup.access import (
    TARGETS,
    check_set_choice,
    choose_services,
    discard_staging,
    find_set,
    physical_stanza,
    postgres_login,
    repo_of,
    target_time_of,
    verify_set,
)
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.backup.restore import RestoreResult, restore_set
from vextrus_nb.config import Environment
from vextrus_nb.errors import BackupError, RunRefused

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook

LATEST = "latest"


def is_point_in_time(parameters: dict[str, Any]) -> bool:
    return parameters.get("target") == LATEST or bool(str(parameters.get("target_time", "") or "").strip())


def chosen_datastores(parameters: dict[str, Any]) -> list[str]:
    return datastores.chosen(str(parameters.get("datastores", "postgres") or "postgres"))


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2, before a kernel)."""
    names = chosen_datastores(parameters)
    if bad := datastores.unknown(names):
        raise RunRefused(f"unknown datastore(s) {', '.join(bad)}; known: {', '.join(datastores.DATASTORES)}")
    if is_point_in_time(parameters) and names != ["postgres"]:
        raise RunRefused(
            "a point-in-time restore is PostgreSQL's alone: restore "
            f"{', '.join(n for n in names if n != 'postgres')} from a set in a run of its own"
        )
    target = parameters.get("target", "scratch")
    if target not in (*TARGETS, LATEST):
        raise RunRefused(f"target must be one of {', '.join((*TARGETS, LATEST))}, not {target!r}")
    when = target_time_of(parameters)
    if when is not None and target == LATEST:
        raise RunRefused("give either target_time or target='latest', not both")
    repo = repo_of(parameters)
    if not is_point_in_time(parameters):
        if repo != 1:
            raise RunRefused(
                "repo names a pgBackRest repository, for a point-in-time restore (target_time=... or "
                "target='latest'); a set's dumps come from from_store"
            )
        check_set_choice(env, parameters)
        return
    if target == "live":
        raise RunRefused(
            "a live point-in-time restore is not supported by this runbook: restore into scratch "
            "(target_time=... with target='scratch'), check the copy, then swap it in by hand"
        )
    if env.backup is None or env.backup.pgbackrest is None:
        raise RunRefused(f"environment '{env.name}' takes no physical backups (backup.pgbackrest)")
    if repo == pgbackrest.S3_REPO and env.backup.pgbackrest.s3 is None:
        raise RunRefused(f"environment '{env.name}' names no S3 repository (backup.pgbackrest.s3): repo=2")
    check_set_choice(env, {**parameters, "set_id": ""})


@dataclass
class Verified:
    """What the restore will use, checked: a backup set (logical) or the pgBackRest repository."""

    path: Path | None = None
    manifest: Manifest | None = None
    stanza: pgbackrest.Stanza | None = None
    repo: int = 1

    def note(self) -> Any:
        from vextrus_nb.display import note

        if self.stanza is not None:
            return note(
                f"pgBackRest repository {self.repo} of stanza {self.stanza.name} "
                f"({self.stanza.repository_location(self.repo)}) verified: every backup file and "
                "archived WAL segment checks out, and the WAL has no gap."
            )
        assert self.manifest is not None
        m = self.manifest
        return note(f"set {m.set_id}: {len(m.files)} files verified, taken {m.ended_at}")


def verify(rb: Runbook) -> Verified:
    """Before anything is touched: the named (or newest) set against its manifest, or, for a
    point-in-time restore, `pgbackrest verify` over the repository."""
    if is_point_in_time(rb.parameters):
        stanza = physical_stanza(rb)
        if stanza is None:
            raise BackupError(f"environment '{rb.env.name}' takes no physical backups (backup.pgbackrest)")
        repo = repo_of(rb.parameters)
        pitr.verify_before_restore(stanza, repo)
        return Verified(stanza=stanza, repo=repo)
    path = find_set(rb, rb.parameters.get("set_id", ""), rb.parameters.get("from_store", "local"))
    manifest = verify_set(path)
    rb.summary["set_id"] = manifest.set_id
    return Verified(path=path, manifest=manifest)


def restore(rb: Runbook, verified: Verified) -> RestoreResult | pitr.PitrResult:
    """Restore and prove; a set fetched from S3 is a working copy, discarded whatever happens."""
    if verified.stanza is not None:
        return point_in_time(rb, verified.stanza, verified.repo)
    assert verified.path is not None and verified.manifest is not None
    names = chosen_datastores(rb.parameters)
    if "postgres" not in names:
        return RestoreResult()
    try:
        restored = restore_set(
            rb,
            verified.path,
            verified.manifest,
            rb.parameters.get("services", ""),
            rb.parameters.get("target", "scratch"),
        )
    finally:
        if names == ["postgres"]:  # else the other datastores still need the fetched copy
            discard_staging(rb)
    rb.summary["restored"] = [o.service for o in restored.outcomes]
    if restored.outcomes:
        live = rb.parameters.get("target") == "live"
        rb.summary["writes"] = ["live databases swapped in (old ones kept)" if live else "scratch databases"]
    if restored.unproven:
        rb.fail(f"restore not proven for: {', '.join(restored.unproven)}")
    return restored


def restore_others(rb: Runbook, verified: Verified) -> datastores.DatastoresResult:
    """The set's Redis, objects and Kafka metadata, as `datastores` asks; each proven."""
    names = [n for n in chosen_datastores(rb.parameters) if n != "postgres"]
    if verified.path is None or verified.manifest is None or not names:
        return datastores.DatastoresResult()
    try:
        result = datastores.restore_datastores(
            rb,
            verified.path,
            verified.manifest,
            names,
            rb.parameters.get("target", "scratch"),
            keep_scratch=bool(rb.parameters.get("keep_scratch", False)),
        )
    finally:
        discard_staging(rb)
    rb.summary["datastores_restored"] = result.restored
    if result.writes:
        rb.summary["writes"] = [*rb.summary.get("writes", []), *result.writes]
    if result.unproven:
        rb.fail(f"restore not proven for: {', '.join(result.unproven)}")
    return result


def point_in_time(rb: Runbook, stanza: pgbackrest.Stanza, repo: int = 1) -> pitr.PitrResult:
    """The whole cluster into scratch, recovered to the target, proven against the live one."""
    login = postgres_login(rb)
    result = pitr.point_in_time_restore(
        stanza,
        login.bindir,
        login,
        choose_services(rb.inventory, rb.parameters.get("services", "")),
        target_time_of(rb.parameters),
        keep=bool(rb.parameters.get("keep_scratch", False)),
        repo=repo,
    )
    rb.summary.update(result.summary())
    rb.summary["writes"] = [
        f"scratch cluster {result.datadir} ({'kept, stopped' if result.kept else 'deleted after the proof'})"
    ]
    if not result.proven:
        rb.fail(
            "point-in-time restore not proven (copy kept at "
            f"{result.datadir}): {'; '.join(result.mismatches[:5])}"
        )
    return result
