"""Sealing into the shared control store, and the store's own verification and sync.

An appended record's notebook and exports go to the bucket first, then the entry naming their
versions goes into the PostgreSQL chain. When the store cannot be reached at sealing time (a
read-only run during an incident), the record waits in this host's `ledger.pending.jsonl`, its
notebook beside it, and joins the chain at the next `ledger sync`, which every later append on
this host also tries: the entry says it was appended late, when and from where it was sealed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vextrus_nb.clock import now_utc
from vextrus_nb.control import evidence_bucket, shared_ledger
from vextrus_nb.control.settings import Control
from vextrus_nb.errors import ControlStoreUnavailable
from vextrus_nb.evidence import approvals, chain, identity

PENDING_NAME = "ledger.pending.jsonl"
log = logging.getLogger(__name__)


def pending_path(outputs_dir: Path) -> Path:
    return outputs_dir / PENDING_NAME


@dataclass(frozen=True)
class SyncResult:
    appended: list[str]  # run ids that joined the chain
    waiting: int  # records still pending (the store went away again)
    problem: str = ""


@dataclass
class SharedStore:
    control: Control

    def describe(self) -> str:
        return self.control.describe()

    # -- appending ------------------------------------------------------------------
    def append(self, record: dict[str, Any], outputs_dir: Path) -> dict[str, Any]:
        """Upload the record's files and chain it; when that fails for whatever reason (the store
        unreachable, refusing, a file gone), keep it pending on this host (returned marked
        `pending`) rather than lose the record of a run that may have changed an environment."""
        try:
            self.sync(outputs_dir)
        except Exception as exc:  # the waiting ones wait on: this record still goes in
            log.warning("ledger sync failed (%s); this run is appended, the waiting ones stay", exc)
        try:
            return self.append_now(record, outputs_dir)
        except Exception as exc:
            self._keep_pending(record, outputs_dir)
            log.warning("%s; run %s kept here until `vextrus-nb ledger sync`", exc, record.get("run_id"))
            return {**record, "pending": str(exc)}

    def append_now(self, record: dict[str, Any], outputs_dir: Path) -> dict[str, Any]:
        stored = dict(record)
        if output := record.get("output"):
            stored["evidence"] = self._upload(outputs_dir, output)
        if artifacts := record.get("artifacts"):
            stored["evidence_artifacts"] = [
                {**self._upload(outputs_dir, name), "sha256": chain.sha256_file(outputs_dir / name)}
                for name in artifacts
                if (outputs_dir / name).is_file()
            ]
        return shared_ledger.append(self.control, stored)

    def _upload(self, outputs_dir: Path, relative: str) -> dict[str, str]:
        return evidence_bucket.upload(self.control, outputs_dir / relative, relative).as_record()

    def _keep_pending(self, record: dict[str, Any], outputs_dir: Path) -> None:
        waiting = {**record, "sealed_at": now_utc(), "sealed_on": identity.host()}
        path = pending_path(outputs_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _pending_lock(path), open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(waiting, sort_keys=True, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def sync(self, outputs_dir: Path) -> SyncResult:
        """Append this host's pending records in the order they were sealed, each once: a record
        already in the chain (a sync cut short after its insert) is not appended again. Under a
        lock on the pending file: two syncs, or a sync and a run going pending, never interleave."""
        path = pending_path(outputs_dir)
        if not path.exists():
            return SyncResult([], 0)
        with _pending_lock(path):
            waiting = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if not waiting:
                return SyncResult([], 0)
            done = {_identity(e) for e in shared_ledger.entries(self.control)}
            appended: list[str] = []
            for index, record in enumerate(waiting):
                if _identity(record) in done:
                    continue
                try:
                    self.append_now({**record, "appended_late": True}, outputs_dir)
                except ControlStoreUnavailable as exc:
                    _rewrite(path, waiting[index:])
                    return SyncResult(appended, len(waiting) - index, str(exc))
                appended.append(str(record.get("run_id")))
            path.unlink()
            return SyncResult(appended, 0)

    # -- reading --------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        return shared_ledger.entries(self.control)

    def fetch_notebook(self, entry: dict[str, Any], target: Path) -> None:
        try:
            evidence_bucket.download(self.control, entry["evidence"], target)
        except ControlStoreUnavailable as exc:
            log.warning("%s: %s not fetched", exc, entry.get("output"))

    def verify(self) -> chain.LedgerVerdict:
        def check_objects(entry: dict[str, Any]) -> str:
            stored, sealed = entry.get("evidence"), entry.get("output_sha256")
            if stored and sealed and (problem := evidence_bucket.check(self.control, stored, sealed)):
                return f"sealed notebook {entry.get('output')}: {problem}"
            for artifact in entry.get("evidence_artifacts") or []:
                if problem := evidence_bucket.check(self.control, artifact, artifact["sha256"]):
                    return f"exported file {artifact['key']}: {problem}"
            return ""

        check_approvals = approvals.checker()

        def check_entry(entry: dict[str, Any]) -> str:
            return check_objects(entry) or check_approvals(entry)

        return chain.verify_lines(shared_ledger.lines(self.control), check_entry, where=self.describe())


def _identity(record: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a record itself, not only its run: one run may have two records (a worker
    recorded lost, then its notebook sealed after all), each to be chained once."""
    return (record.get("run_id"), record.get("status"), record.get("output_sha256"), record.get("sealed_at"))


@contextlib.contextmanager
def _pending_lock(path: Path) -> Iterator[None]:
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _rewrite(path: Path, records: list[dict[str, Any]]) -> None:
    partial = path.with_name(f".{path.name}.rewrite")
    partial.write_text("".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records))
    partial.replace(path)
