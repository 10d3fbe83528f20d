"""The hash chain every ledger shares, whichever store holds it (a file, PostgreSQL).

An entry carries the previous entry's hash and its own hash over its canonical JSON, and, with a
signing key, an Ed25519 signature over that hash: editing, dropping or reordering an entry breaks
the chain at a point `check_link` names. The stores decide where entries live and how appends
are serialized; what an entry is, and when it is intact, is decided here once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vextrus_nb.evidence import signing

GENESIS = "0" * 64
# Fields not covered by an entry's hash: the hash itself, and the signature made over it.
_UNHASHED = ("hash", "signature", "signer")

NotebookCheck = Callable[[dict[str, Any]], str]
"""(entry) -> "" when the notebook it seals is intact, else what is wrong."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k not in _UNHASHED})).hexdigest()


def link(record: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """The record as the entry after `prev_hash`: hashed, and signed when a key is configured."""
    entry = {**record, "prev_hash": prev_hash}
    entry["hash"] = entry_hash(entry)
    if (key := signing.signing_key()) is not None:
        entry["signature"] = signing.sign(key, entry["hash"])
        entry["signer"] = signing.fingerprint(key.public_key())
    return entry


def to_line(entry: dict[str, Any]) -> str:
    """One entry as the JSONL ledger writes it (and as `ledger export` gives it to an auditor)."""
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str)


def check_link(entry: dict[str, Any], previous: str) -> str:
    """ "" when the entry is intact and follows `previous`, else what is wrong."""
    if entry.get("hash") != entry_hash(entry):
        return "entry was modified (its hash does not match its content)"
    if entry.get("prev_hash") != previous:
        return "chain broken: previous entry missing or altered"
    return ""


def check_signature(entry: dict[str, Any], key: Any, signed_before: bool) -> tuple[str, bool]:
    """("", signed so far) when the signature holds. Once entries are signed, an unsigned
    one after them is a downgrade, not an old entry."""
    signature = entry.get("signature")
    if signature is None:
        return ("entry is unsigned after signed entries" if signed_before else ""), signed_before
    if not signing.is_valid(key, entry["hash"], signature):
        return f"signature does not verify with key {signing.fingerprint(key)}", True
    return "", True


@dataclass(frozen=True)
class LedgerVerdict:
    ok: bool
    entries: int
    broken_line: int | None = None
    broken_run_id: str | None = None
    reason: str = ""
    signed_with: str | None = None
    where: str = ""  # the store, when not this host's ledger file

    def message(self) -> str:
        store = f" ({self.where})" if self.where else ""
        if self.ok:
            signatures = f", signatures verified with key {self.signed_with}" if self.signed_with else ""
            return f"ledger intact{store}: {self.entries} entries, chain and notebooks verified{signatures}"
        return (
            f"ledger broken{store} at line {self.broken_line} "
            f"(run {self.broken_run_id or '?'}): {self.reason}"
        )


def verify_lines(lines: list[str], check_notebook: NotebookCheck, where: str = "") -> LedgerVerdict:
    """Every entry's hash, the chain, the signatures (with a key configured) and, through
    `check_notebook`, each sealed notebook: the verdict names the first broken entry."""
    previous, count = GENESIS, 0
    key = signing.verify_key()
    signed_before = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        count += 1
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            return LedgerVerdict(False, count, number, None, f"not valid JSON ({exc.msg})", where=where)
        problem = check_link(entry, previous)
        if not problem and key is not None:
            problem, signed_before = check_signature(entry, key, signed_before)
        if not problem:
            problem = check_notebook(entry)
        if problem:
            return LedgerVerdict(False, count, number, entry.get("run_id"), problem, where=where)
        previous = entry["hash"]
    fingerprint = signing.fingerprint(key) if key else None
    return LedgerVerdict(ok=True, entries=count, signed_with=fingerprint, where=where)
