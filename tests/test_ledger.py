"""The hash chain and redaction, directly."""

from __future__ import annotations

import json
from pathlib import Path

from vextrus_nb.evidence import ledger, scrub


def _fill(outputs: Path, count: int) -> list[dict]:
    entries = []
    for i in range(count):
        notebook = outputs / f"run{i}.ipynb"
        notebook.parent.mkdir(parents=True, exist_ok=True)
        notebook.write_text(json.dumps({"cells": [], "i": i}))
        entries.append(
            ledger.append_entry(
                {
                    "run_id": f"r{i}",
                    "status": "passed",
                    "output": notebook.name,
                    "output_sha256": ledger.sha256_file(notebook),
                },
                outputs,
            )
        )
    return entries


def test_chain_links_each_entry_to_the_previous(tmp_path: Path) -> None:
    entries = _fill(tmp_path, 3)
    assert entries[0]["prev_hash"] == ledger.GENESIS
    assert [e["prev_hash"] for e in entries[1:]] == [e["hash"] for e in entries[:-1]]
    assert ledger.verify_ledger(tmp_path).ok


def test_an_edited_line_is_named(tmp_path: Path) -> None:
    _fill(tmp_path, 3)
    path = tmp_path / "ledger.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"passed"', '"failed"')
    path.write_text("\n".join(lines) + "\n")
    verdict = ledger.verify_ledger(tmp_path)
    assert not verdict.ok and verdict.broken_line == 2 and verdict.broken_run_id == "r1"
    assert "modified" in verdict.reason


def test_a_deleted_line_breaks_the_chain(tmp_path: Path) -> None:
    _fill(tmp_path, 3)
    path = tmp_path / "ledger.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    verdict = ledger.verify_ledger(tmp_path)
    assert not verdict.ok and verdict.broken_run_id == "r2" and "chain broken" in verdict.reason


def test_a_missing_notebook_is_named(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    (tmp_path / "run0.ipynb").unlink()
    verdict = ledger.verify_ledger(tmp_path)
    assert not verdict.ok and verdict.broken_run_id == "r0" and "missing" in verdict.reason


def test_empty_ledger_is_intact(tmp_path: Path) -> None:
    assert ledger.verify_ledger(tmp_path).ok


def test_redaction_of_names_and_values() -> None:
    assert scrub.redact_parameters(
        {
            "db_password": "x",
            "api_token": "y",
            "jwt_signing_key": "z",
            "monkey": "ok",
            "env": "sandbox",
            "password": "",
        }
    ) == {
        "db_password": scrub.REDACTED,
        "api_token": scrub.REDACTED,
        "jwt_signing_key": scrub.REDACTED,
        "monkey": "ok",
        "env": "sandbox",
        "password": "",
    }
    scrubber = scrub.Scrubber(["s3cret-value", "abc"])
    tree = {"a": ["prefix s3cret-value suffix", 3], "b": "abc stays: too short to be a secret"}
    assert scrubber.tree(tree) == {
        "a": [f"prefix {scrub.REDACTED} suffix", 3],
        "b": "abc stays: too short to be a secret",
    }
