"""The tamper-evident ledger of runs.

Every run appends one line to `outputs/ledger.jsonl`. Each line carries the
sha256 of the output notebook, the previous line's hash and its own hash over
its canonical JSON, so editing a notebook or a line, or deleting a line, breaks
the chain at a point `verify_ledger` names.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vextrus_nb import paths
from vextrus_nb.evidence import signing

LEDGER_NAME = "ledger.jsonl"
GENESIS = "0" * 64


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


# Fields not covered by an entry's hash: the hash itself, and the signature made over it.
_UNHASHED = ("hash", "signature", "signer")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k not in _UNHASHED})).hexdigest()


def ledger_path(outputs_dir: Path | None = None) -> Path:
    return (outputs_dir or paths.outputs_dir()) / LEDGER_NAME


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


def append_entry(record: dict[str, Any], outputs_dir: Path | None = None) -> dict[str, Any]:
    """Chain and append one run record; returns the entry as written (with its hash)."""
    path = ledger_path(outputs_dir)
    with _ledger_lock(path):
        entry = {**record, "prev_hash": _last_hash(path)}
        entry["hash"] = entry_hash(entry)
        if (key := signing.signing_key()) is not None:
            entry["signature"] = signing.sign(key, entry["hash"])
            entry["signer"] = signing.fingerprint(key.public_key())
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return entry


def read_entries(outputs_dir: Path | None = None) -> list[dict[str, Any]]:
    path = ledger_path(outputs_dir)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class LedgerVerdict:
    ok: bool
    entries: int
    broken_line: int | None = None
    broken_run_id: str | None = None
    reason: str = ""
    signed_with: str | None = None

    def message(self) -> str:
        if self.ok:
            signatures = f", signatures verified with key {self.signed_with}" if self.signed_with else ""
            return f"ledger intact: {self.entries} entries, chain and notebooks verified{signatures}"
        return f"ledger broken at line {self.broken_line} (run {self.broken_run_id or '?'}): {self.reason}"


def verify_ledger(outputs_dir: Path | None = None) -> LedgerVerdict:
    """Check every line's hash, the chain, and every sealed notebook's sha256."""
    outputs_dir = outputs_dir or paths.outputs_dir()
    path = ledger_path(outputs_dir)
    if not path.exists():
        return LedgerVerdict(ok=True, entries=0)
    previous = GENESIS
    count = 0
    key = signing.verify_key()
    signed_before = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        count += 1
        problem, run_id = _check_line(line, previous, outputs_dir)
        if not problem and key is not None:
            problem, signed_before = _check_signature(json.loads(line), key, signed_before)
        if problem:
            return LedgerVerdict(False, count, number, run_id, problem)
        previous = json.loads(line)["hash"]
    return LedgerVerdict(ok=True, entries=count, signed_with=signing.fingerprint(key) if key else None)


def _check_signature(entry: dict[str, Any], key: Any, signed_before: bool) -> tuple[str, bool]:
    """("", signed so far) when the signature holds. Once entries are signed, an unsigned
    one after them is a downgrade, not an old entry."""
    signature = entry.get("signature")
    if signature is None:
        return ("entry is unsigned after signed entries" if signed_before else ""), signed_before
    if not signing.is_valid(key, entry["hash"], signature):
        return f"signature does not verify with key {signing.fingerprint(key)}", True
    return "", True


def _check_line(line: str, previous: str, outputs_dir: Path) -> tuple[str, str | None]:
    """("", run id) when the line is intact, else (what is wrong, run id)."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})", None
    run_id = entry.get("run_id")
    if entry.get("hash") != entry_hash(entry):
        return "entry was modified (its hash does not match its content)", run_id
    if entry.get("prev_hash") != previous:
        return "chain broken: previous entry missing or altered", run_id
    output, expected = entry.get("output"), entry.get("output_sha256")
    if output and expected:
        notebook = outputs_dir / output
        if not notebook.exists():
            return f"output notebook {output} is missing", run_id
        if sha256_file(notebook) != expected:
            return f"output notebook {output} was modified after the run", run_id
    return "", run_id


def is_sealed(entry: dict[str, Any], outputs_dir: Path | None = None) -> bool:
    """The entry points at its output notebook and the notebook still hashes to what was sealed:
    the only kind of run that counts as evidence (a DR drill, a backup, a load baseline)."""
    output, expected = entry.get("output"), entry.get("output_sha256")
    if not output or not expected:
        return False
    notebook = (outputs_dir or paths.outputs_dir()) / output
    return notebook.is_file() and sha256_file(notebook) == expected


def sealed_entries(outputs_dir: Path | None = None) -> list[dict[str, Any]]:
    """The ledger's entries whose notebooks are sealed and intact (is_sealed), in ledger order."""
    return [e for e in read_entries(outputs_dir) if is_sealed(e, outputs_dir)]
