"""The run's kernel, started before papermill is imported.

A kernel costs a run 1-1.5 s to start (a new Python importing ipykernel, IPython and zmq), and
importing papermill and preparing the notebook another 0.4-0.6 s. Started first, the kernel boots
on the other core while the runner does the rest; papermill then runs the notebook on it (its
`km` argument, which nbclient uses instead of starting a kernel of its own) and `booted_kernel`
shuts it down afterwards, as nbclient would have.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The arguments nbclient gives a kernel it starts (no IPython history file on disk), quiet (the
# kernel's start-up warnings about the loopback TCP transport are noise on an operator's
# terminal), and the kernel class that exits without collecting its heap (run/run_kernel.py).
KERNEL_ARGUMENTS = [
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.log_level=ERROR",
    "--IPKernelApp.kernel_class=vextrus_nb.run.run_kernel.RunKernel",
]


@contextlib.contextmanager
def booted_kernel(cwd: Path, kernel_name: str = "python3") -> Iterator[Any]:
    """A started kernel (an AsyncKernelManager, as nbclient expects), shut down on leaving.
    It inherits the process environment as it is when this is entered."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    clients: list[Any] = []

    class RunKernel(AsyncKernelManager):
        def client(self, **kwargs: Any) -> Any:
            # nbclient leaves the channels of a kernel it did not start open; closed here.
            made = super().client(**kwargs)
            clients.append(made)
            return made

    manager = RunKernel(kernel_name=kernel_name)
    run_sync(manager.start_kernel)(cwd=str(cwd), extra_arguments=KERNEL_ARGUMENTS)
    try:
        yield manager
    finally:
        for client in clients:
            client.stop_channels()
        run_sync(_shut_down)(manager)


async def _shut_down(manager: Any) -> None:
    try:
        await manager.shutdown_kernel(now=False)
    except RuntimeError:  # "No kernel is running!": it died during the run
        await manager.cleanup_resources()
