"""The tamper-evident ledger of runs, in whichever control store is in use.

Every run appends one entry. Each carries the sha256 of the output notebook, the previous
entry's hash and its own hash over its canonical JSON (evidence/chain.py), so editing a notebook
or an entry, or deleting an entry, breaks the chain at a point `verify_ledger` names.

The embedded default is `outputs/ledger.jsonl`, one line per entry, appends serialized by an
flock. With a shared control store (control/settings.py) the same entries live in its PostgreSQL
and the sealed notebooks in its bucket (control/shared_store.py): the functions here answer
from whichever store is configured, so their callers never ask.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb import paths
from vextrus_nb.evidence import approvals, chain
from vextrus_nb.evidence.chain import (
    GENESIS,
    LedgerVerdict,
    NotebookCheck,
    entry_hash,
    sha256_file,
    verify_lines,
)

if TYPE_CHECKING:
    from vextrus_nb.control.shared_store import SharedStore

__all__ = ["GENESIS", "LedgerVerdict", "entry_hash", "sha256_file"]

LEDGER_NAME = "ledger.jsonl"


def ledger_path(outputs_dir: Path | None = None) -> Path:
    return (outputs_dir or paths.outputs_dir()) / LEDGER_NAME


def _shared() -> SharedStore | None:
    """The shared store when one is configured, else None (the files)."""
    from vextrus_nb.control import settings

    control = settings.load()
    if not control.is_shared:
        return None
    from vextrus_nb.control import shared_store

    return shared_store.SharedStore(control)


@contextlib.contextmanager
def _ledger_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _last_hash(path: Path) -> str:
    if not path.exists():
        return GENESIS
    last = ""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                last = line
    return json.loads(last)["hash"] if last else GENESIS


def append_to_file(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """Chain and append one record to a JSONL ledger file; returns the entry as written."""
    with _ledger_lock(path):
        entry = chain.link(record, _last_hash(path))
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(chain.to_line(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return entry


def append_entry(record: dict[str, Any], outputs_dir: Path | None = None) -> dict[str, Any]:
    """Chain and append one run record; returns the entry as written (with its hash)."""
    outputs_dir = outputs_dir or paths.outputs_dir()
    if (shared := _shared()) is not None:
        return shared.append(record, outputs_dir)
    return append_to_file(record, ledger_path(outputs_dir))


def read_file(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_entries(outputs_dir: Path | None = None) -> list[dict[str, Any]]:
    if (shared := _shared()) is not None:
        return shared.entries()
    return read_file(ledger_path(outputs_dir))


def notebook_on_disk(outputs_dir: Path) -> NotebookCheck:
    def check(entry: dict[str, Any]) -> str:
        output, expected = entry.get("output"), entry.get("output_sha256")
        if output and expected:
            notebook = outputs_dir / output
            if not notebook.exists():
                return f"output notebook {output} is missing"
            if sha256_file(notebook) != expected:
                return f"output notebook {output} was modified after the run"
        return ""

    return check


def also_approvals(check_notebook: NotebookCheck) -> NotebookCheck:
    """The notebook check, then each recorded approval's signature against its environment's
    approvers' keys (evidence/approvals.py)."""
    check_approvals = approvals.checker()
    return lambda entry: check_notebook(entry) or check_approvals(entry)


def verify_file(path: Path, notebooks_dir: Path) -> LedgerVerdict:
    """A JSONL ledger (this host's, or one `ledger export` wrote) against notebooks on disk."""
    if not path.exists():
        return LedgerVerdict(ok=True, entries=0)
    checks = also_approvals(notebook_on_disk(notebooks_dir))
    return verify_lines(path.read_text(encoding="utf-8").splitlines(), checks)


def verify_ledger(outputs_dir: Path | None = None) -> LedgerVerdict:
    """Check every entry's hash, the chain, the signatures and every sealed notebook."""
    outputs_dir = outputs_dir or paths.outputs_dir()
    if (shared := _shared()) is not None:
        return shared.verify()
    return verify_file(ledger_path(outputs_dir), outputs_dir)


def is_sealed(entry: dict[str, Any], outputs_dir: Path | None = None) -> bool:
    """The entry points at its output notebook and the notebook still hashes to what was sealed:
    the only kind of run that counts as evidence (a DR drill, a backup, a load baseline). With a
    shared store, a notebook this host does not have is fetched from the bucket first."""
    output, expected = entry.get("output"), entry.get("output_sha256")
    if not output or not expected:
        return False
    notebook = (outputs_dir or paths.outputs_dir()) / output
    if not notebook.is_file() and entry.get("evidence") and (shared := _shared()) is not None:
        shared.fetch_notebook(entry, notebook)
    return notebook.is_file() and sha256_file(notebook) == expected


def sealed_entries(outputs_dir: Path | None = None) -> list[dict[str, Any]]:
    """The ledger's entries whose notebooks are sealed and intact (is_sealed), in ledger order."""
    return [e for e in read_entries(outputs_dir) if is_sealed(e, outputs_dir)]


def copy_notebooks(entries: list[dict[str, Any]], target: Path, outputs_dir: Path | None = None) -> int:
    """Each sealed entry's notebook under `target` by its outputs path (fetched from the shared
    store's bucket when this host does not have it), for an offline `ledger verify --file`."""
    import shutil

    outputs_dir = outputs_dir or paths.outputs_dir()
    copied = 0
    for entry in entries:
        if is_sealed(entry, outputs_dir):
            destination = target / entry["output"]
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(outputs_dir / entry["output"], destination)
            copied += 1
    return copied
