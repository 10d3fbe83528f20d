"""Where PostgreSQL's own tools live (initdb, pg_ctl, pg_dump, pg_restore): backups use them
against any environment, the sandbox to run its cluster."""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

from vextrus_nb.errors import ConfigError


def find_bindir() -> Path:
    """Where initdb, pg_ctl, pg_dump live: pg_config, then Debian's layout, then PATH."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise ConfigError(
        "PostgreSQL server binaries not found (looked at pg_config --bindir, /usr/lib/postgresql/*/bin, "
        "PATH); install them, e.g. `apt-get install postgresql`"
    )
