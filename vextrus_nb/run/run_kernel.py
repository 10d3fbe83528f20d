"""The IPython kernel a headless run executes in (run/kernel.py starts it by this class's name).

It differs from IPython's in one thing: told to shut down, it freezes the garbage collector.
A run's kernel has imported the probe clients (psycopg, redis, httpx, boto3, temporalio, ...),
about 130,000 objects; at exit the interpreter's collections walk them all, and the runner
waited 0.5-1.0 s for a kernel that had nothing left to do (0.1 s frozen). Frozen objects are
still freed and the exit handlers (a sandbox server left running, IPython's own) still run.
"""

from __future__ import annotations

import gc
from typing import Any

from ipykernel.ipkernel import IPythonKernel


class RunKernel(IPythonKernel):
    def do_shutdown(self, restart: bool) -> Any:
        gc.freeze()  # the process is about to exit: nothing to gain by collecting the heap first
        return super().do_shutdown(restart)
