"""`vextrus-nb ledger import`: a host's file ledger moved into the shared store, nothing lost
or reordered, its own chain still checkable from what each imported entry keeps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vextrus_nb.control import shared_ledger
from vextrus_nb.control.shared_store import SharedStore
from vextrus_nb.errors import ControlStoreError
from vextrus_nb.evidence.ledger import read_file, verify_file

CHAIN_FIELDS = ("hash", "prev_hash", "signature", "signer")  # the file's own chain, kept aside


@dataclass(frozen=True)
class ImportResult:
    imported: int
    already_there: int


def import_file_ledger(store: SharedStore, path: Path, outputs_dir: Path) -> ImportResult:
    """Move a host's file ledger into the shared chain: verified first (a broken file is refused,
    nothing imported), then each entry in its order, its notebook and exports uploaded. An entry
    keeps everything it said and gains `imported_from` (the file, its line, its original hash and
    signature), so the file's own chain can still be checked against it. Entries whose run is
    already in the store are skipped: importing twice adds nothing."""
    verdict = verify_file(path, outputs_dir)
    if not verdict.ok:
        raise ControlStoreError(f"{path} does not verify, nothing imported: {verdict.message()}")
    present = shared_ledger.run_ids(store.control)
    imported = skipped = 0
    for line, entry in enumerate(read_file(path), start=1):
        if entry.get("run_id") in present:
            skipped += 1
            continue
        original: dict[str, Any] = {
            k: entry[k] for k in ("hash", "prev_hash", "signature", "signer") if k in entry
        }
        record = {k: v for k, v in entry.items() if k not in original}
        provenance: dict[str, Any] = {"ledger": str(path), "line": line, **original}
        store.append_now({**record, "imported_from": provenance}, outputs_dir)
        imported += 1
    return ImportResult(imported, skipped)
