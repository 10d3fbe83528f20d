"""Run a coroutine to completion from sync code, inside Jupyter or not.

An IPython kernel already runs an event loop on its main thread, so
`asyncio.run` would fail there; we then run the coroutine on a fresh loop in a
worker thread and wait for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
