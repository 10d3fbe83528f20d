"""Restore one database of a verified set, and prove the data came back.

Always into a fresh database first. For a scratch restore that is the end;
for a live restore the proven copy is then swapped in and the old database is
kept under another name, so a restore never destroys the only copy of anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vextrus_nb.backup import postgres
from vextrus_nb.backup.access import choose_services, postgres_login
from vextrus_nb.backup.manifest import DatabaseEntry, Manifest
from vextrus_nb.config import Component
from vextrus_nb.display import Progress
from vextrus_nb.run_context import RunContext


@dataclass
class RestoreOutcome:
    service: str
    database: str  # where the data now is
    live: bool
    seconds: float = 0.0
    bytes: int = 0
    tables: int = 0
    rows: int = 0
    mismatches: list[str] = field(default_factory=list)
    kept_as: str = ""  # the old live database, after a live restore

    @property
    def proven(self) -> bool:
        return not self.mismatches

    @property
    def throughput_mib_s(self) -> float:
        return round(self.bytes / 2**20 / self.seconds, 1) if self.seconds else 0.0


def scratch_name(entry: DatabaseEntry, run_id: str) -> str:
    # PostgreSQL names hold 63 bytes; the restoring run's id keeps two restores of one set apart.
    return f"{entry.database[:36]}_restore_{run_id}"


def prove(login: postgres.PostgresLogin, database: str, entry: DatabaseEntry) -> list[str]:
    """Row counts and table checksums of the restored database against the manifest's."""
    with login.connect(database) as conn:
        found = postgres.table_stats(conn)
    mismatches = []
    for table, expected in entry.tables.items():
        got = found.get(table)
        if got is None:
            mismatches.append(f"{table}: missing after restore")
        elif got.rows != expected.rows:
            mismatches.append(f"{table}: {got.rows} rows, manifest says {expected.rows}")
        elif got.checksum != expected.checksum:
            mismatches.append(f"{table}: same row count, different content (checksum differs)")
    mismatches += [f"{table}: not in the manifest" for table in sorted(set(found) - set(entry.tables))]
    return mismatches


def restore_database(
    login: postgres.PostgresLogin,
    set_dir: Path,
    entry: DatabaseEntry,
    live: bool,
    run_id: str,
    jobs: int = 2,
    keep_scratch: bool = True,
) -> RestoreOutcome:
    """Restore into a scratch database and prove it; when `live`, swap the proven copy in."""
    scratch = scratch_name(entry, run_id)
    owner = postgres.database_owner(login, entry.database)
    outcome = RestoreOutcome(
        entry.service,
        scratch,
        live,
        bytes=entry.bytes,
        tables=len(entry.tables),
        rows=sum(t.rows for t in entry.tables.values()),
    )
    outcome.seconds = round(
        postgres.restore_database(login, set_dir / entry.directory, scratch, owner, jobs), 3
    )
    outcome.mismatches = prove(login, scratch, entry)
    if not outcome.proven:
        return outcome  # the scratch copy stays for inspection; nothing live was touched
    if live:
        outcome.kept_as = f"{entry.database[:36]}_before_{run_id}"
        postgres.swap_in(login, scratch, entry.database, outcome.kept_as)
        outcome.database = entry.database
    elif not keep_scratch:
        postgres.drop_database(login, scratch)
    return outcome


@dataclass
class RestoreResult:
    outcomes: list[RestoreOutcome] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> Any:
        """The restores (or, on a dry run, the plan); a sentence when there is neither."""
        from vextrus_nb.display import note

        frame = self.frame()
        return note("No database was restored.") if frame.empty else frame

    def frame(self) -> Any:
        import pandas as pd

        if not self.outcomes:
            return pd.DataFrame(self.planned)
        return pd.DataFrame(
            [
                {
                    "service": o.service,
                    "restored into": o.database,
                    "live": o.live,
                    "tables": o.tables,
                    "rows": o.rows,
                    "seconds": o.seconds,
                    "MiB/s": o.throughput_mib_s,
                    "proven": o.proven,
                    "mismatches": "; ".join(o.mismatches),
                    "old database kept as": o.kept_as,
                }
                for o in self.outcomes
            ]
        )

    @property
    def unproven(self) -> list[str]:
        return [o.service for o in self.outcomes if not o.proven]


def plan(manifest: Manifest, services: list[Component], target: str, dry_run: bool) -> list[dict[str, Any]]:
    chosen = {s.name for s in services}
    return [
        {
            "service": d.service,
            "from": f"{manifest.set_id}/{d.directory}",
            "into": d.database if target == "live" else f"scratch copy of {d.database}",
            "tables": len(d.tables),
            "action": "nothing (dry run)" if target == "live" and dry_run else "restore, then prove",
        }
        for d in manifest.databases
        if d.service in chosen
    ]


def restore_set(
    run: RunContext,
    path: Path,
    manifest: Manifest,
    services: str = "",
    target: str = "scratch",
    keep_scratch: bool = True,
) -> RestoreResult:
    chosen = choose_services(run.inventory, services)
    result = RestoreResult(planned=plan(manifest, chosen, target, run.dry_run))
    if target == "live" and run.dry_run:
        return result  # a live restore changes nothing without dry_run=false
    login = postgres_login(run)
    entries = [manifest.database(s.name) for s in chosen if s.name in {d.service for d in manifest.databases}]
    bar = Progress(len(entries), f"restoring {len(entries)} databases")
    try:
        for entry in entries:
            outcome = restore_database(
                login,
                path,
                entry,
                target == "live",
                run.run_id,
                run.env.backup.jobs if run.env.backup else 2,
                keep_scratch,
            )
            result.outcomes.append(outcome)
            bar.step(f"{entry.service}: {'proven' if outcome.proven else 'MISMATCH'}")
    finally:
        bar.close()
    return result
