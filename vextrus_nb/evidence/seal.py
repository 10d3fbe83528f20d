"""Sealing a run: the one way a notebook becomes evidence, whether papermill executed it
(`vextrus-nb run`) or an engineer stepped through it in JupyterLab (`vextrus-nb open`).

Every secret the run could have touched is scrubbed from every cell, output and the metadata
(papermill copies parameters into an injected cell and into metadata.papermill: papermill #271,
#706), papermill's error banners are taken out (the verdict says what failed), the run record is
stamped into metadata.vextrus, the notebook is written, hashed and one ledger entry points at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb import paths
from vextrus_nb.evidence import ledger, scrub

if TYPE_CHECKING:
    from vextrus_nb.config import Environment


def scrubber_for(env: Environment, parameters: dict[str, Any], spill: Path | None = None) -> scrub.Scrubber:
    """Every secret the run could have touched: the environment's, the sandbox's own, secret
    parameters, and what the kernel spilled (values only it learned: a generated password)."""
    scrubber = scrub.Scrubber(env.resolve_all_secrets().values())
    if env.sandbox:
        secrets_dir = paths.sandbox_dir() / "secrets"
        if secrets_dir.is_dir():
            scrubber.add(p.read_text().strip() for p in secrets_dir.iterdir() if p.is_file())
    scrubber.add(str(v) for k, v in parameters.items() if scrub.is_secret_name(k) and v not in (None, ""))
    if spill is not None:
        scrubber.add_spilled(spill)
    return scrubber


def redact_injected_parameters(nb: Any, parameters: dict[str, Any]) -> None:
    """papermill copies parameters into a cell and into metadata (papermill #271, #706)."""
    secret_names = [k for k in parameters if scrub.is_secret_name(k)]
    papermill_meta = nb.metadata.get("papermill", {})
    if "parameters" in papermill_meta:
        papermill_meta["parameters"] = scrub.redact_parameters(dict(papermill_meta["parameters"]))
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            lines = cell.source.splitlines()
            for i, line in enumerate(lines):
                name = line.split("=", 1)[0].strip()
                if name in secret_names:
                    lines[i] = f'{name} = "{scrub.REDACTED}"'
            cell.source = "\n".join(lines)


def seal(
    nb: Any,
    output: Path,
    record: dict[str, Any],
    runbook_metadata: dict[str, Any],
    scrubber: scrub.Scrubber,
    outputs_dir: Path,
    executed_by: str,
) -> dict[str, Any]:
    """Scrub, stamp, write, hash and chain one run; returns its ledger entry."""
    import nbformat
    from papermill.execute import remove_error_markers

    parameters = record.get("parameters", {})
    nb = remove_error_markers(nb)
    redact_injected_parameters(nb, parameters)
    nb = nbformat.from_dict(scrubber.tree(nb))
    record = scrubber.tree(record)
    nb.metadata["vextrus"] = {**runbook_metadata, "record": record}
    nb.metadata["vextrus"].pop("run", None)  # the working copy's pointer; the record replaces it
    if "papermill" in nb.metadata:  # papermill named its scratch file; the evidence is this one
        nb.metadata["papermill"]["output_path"] = output.name
    # Written beside and renamed over the working copy, so no reader ever sees half a notebook.
    scratch = output.with_name(f".{output.name}.sealing")
    nbformat.write(nb, scratch)
    scratch.chmod(0o644)
    scratch.replace(output)
    return ledger.append_entry(
        {
            **record,
            "executed_by": executed_by,
            "output": str(output.relative_to(outputs_dir)),
            "output_sha256": ledger.sha256_file(output),
        },
        outputs_dir,
    )
