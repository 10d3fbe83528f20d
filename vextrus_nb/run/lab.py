"""JupyterLab for runbooks: the server's contents manager and post-save hook (`vextrus-nb lab`).

- The committed templates under notebooks/ are read-only: Lab opens and shows them ("read-only"
  in its toolbar, Save disabled) but the server refuses every write, rename or delete of them, so
  Lab's autosave can never turn an engineer's run into the committed default.
- A sealed notebook is read-only too: its sha256 is in the ledger.
- After every save (autosave included) the hook asks whether the file is the working copy of a
  finished run that shows its verdict; if so it seals it, exactly as the headless runner does.
  Why a hook and not only `vextrus-nb seal`: the engineer's natural last act, saving, becomes
  the seal, and nothing depends on remembering a command; `vextrus-nb seal` remains for working
  copies saved by another front end.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError

from vextrus_nb import paths
from vextrus_nb.run import interactive


class RunbookContentsManager(AsyncLargeFileManager):
    # Saves of one file run one at a time, each judged after the one before has finished:
    # otherwise an autosave and a Ctrl+S in flight together both pass the guard, the first
    # seals the run in its post-save hook and the second overwrites the sealed notebook.
    _save_locks: ClassVar[dict[str, asyncio.Lock]] = {}

    def _os_path(self, path: str) -> Path:
        return Path(self._get_os_path(path.strip("/")))

    def _refusal(self, path: str) -> str | None:
        os_path = self._os_path(path)
        if interactive.is_template(os_path):
            return (
                f"{path} is a committed runbook template: read-only (`vextrus-nb open` makes a working copy)"
            )
        if os_path.suffix == ".ipynb" and os_path.is_file() and interactive.is_sealed_notebook(os_path):
            return f"{path} is a sealed run: read-only (its sha256 is in the ledger)"
        return None

    def is_writable(self, path: str) -> bool:
        return self._refusal(path) is None and super().is_writable(path)

    def _guard(self, *paths_: str) -> None:
        for path in paths_:
            if (why := self._refusal(path)) is not None:
                raise HTTPError(403, why)

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        lock = self._save_locks.setdefault(str(self._os_path(path)), asyncio.Lock())
        async with lock:
            self._guard(path)
            return await super().save(model, path)

    async def delete_file(self, path: str) -> None:
        self._guard(path)
        return await super().delete_file(path)

    async def rename_file(self, old_path: str, new_path: str) -> None:
        self._guard(old_path, new_path)
        return await super().rename_file(old_path, new_path)

    async def restore_checkpoint(self, checkpoint_id: str, path: str) -> None:
        self._guard(path)
        return await super().restore_checkpoint(checkpoint_id, path)


def post_save_hook(model: dict[str, Any], os_path: str, contents_manager: Any, **kwargs: Any) -> None:
    """Seal a finished run's working copy when it is saved with its verdict."""
    notebook = Path(os_path)
    if notebook.suffix != ".ipynb":
        return
    try:
        notebook.resolve().relative_to(paths.outputs_dir().resolve())
    except ValueError:
        return
    entry = interactive.seal_if_finished(notebook)
    if entry is not None:
        contents_manager.log.info("sealed run %s: %s", entry.get("run_id"), os_path)


def lab_arguments(port: int | None, token: str | None, open_browser: bool) -> list[str]:
    """`jupyter lab` rooted at the project (notebooks/ and outputs/ both reachable), on loopback,
    with the contents manager and hook above; root is allowed (a server or container shell)."""
    arguments = [
        f"--ServerApp.root_dir={paths.project_root()}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.allow_root=True",
        f"--ServerApp.contents_manager_class={__name__}.RunbookContentsManager",
        f"--FileContentsManager.post_save_hook={__name__}.post_save_hook",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if port:
        arguments.append(f"--ServerApp.port={port}")
    if token is not None:
        arguments.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        arguments.append("--no-browser")
    return arguments


def running_server_url(notebook: Path) -> str | None:
    """The URL of `notebook` in a running Jupyter server whose root holds it, with its token."""
    from jupyter_server.serverapp import list_running_servers

    for server in list_running_servers():
        try:
            relative = notebook.resolve().relative_to(Path(server["root_dir"]).resolve())
        except (KeyError, ValueError):
            continue
        token = f"?token={server['token']}" if server.get("token") else ""
        return f"{server['url'].rstrip('/')}/lab/tree/{relative.as_posix()}{token}"
    return None
