"""uvloop, imported with cheaper bookkeeping of its connections (PERFORMANCE.md).

uvloop keeps each transport it makes in a `weakref.WeakValueDictionary` keyed by its file
descriptor (to refuse `add_reader` on a descriptor a live transport holds). That class is
pure Python: a one-shot pipe request's connection ran five interpreted calls in it (its
`__setitem__`, `KeyedRef.__new__` and `__init__`, and the removal callback as the transport
died), 4.8k of its 78.6k instructions. uvloop takes the class, and `asyncio.isfuture` (one
more interpreted call per connection, 1.1k), from their modules as it is imported; so for
that import alone the class is one whose `__setitem__` stores a plain weak reference, and
`asyncio` has no `isfuture`, for which uvloop checks `isinstance(obj, asyncio.Future)` (its
waiters are the loop's own futures).

The table never removes an entry: a dead one is overwritten when its descriptor's number is
used again, so it holds at most one weak reference per number the process has had open.
Its other methods are WeakValueDictionary's, which read plain weak references as well.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import weakref
from typing import Any


class _Transports(weakref.WeakValueDictionary[int, Any]):
    def __setitem__(self, fd: int, transport: Any) -> None:
        self.data[fd] = weakref.ref(transport)  # type: ignore[attr-defined]  # (no stub)


def import_uvloop() -> None:
    """Import uvloop, its table of transports a `_Transports` (ImportError where it is not
    installed); the caller's `import uvloop` then finds it. Left to that import, as it is,
    where uvloop was imported before or where another thread runs (none may see the swap)."""
    if "uvloop" in sys.modules or threading.active_count() > 1:
        return
    table, isfuture = weakref.WeakValueDictionary, asyncio.isfuture
    weakref.WeakValueDictionary = _Transports  # type: ignore[misc,assignment]
    del asyncio.isfuture
    try:
        importlib.import_module("uvloop")
    finally:
        weakref.WeakValueDictionary, asyncio.isfuture = table, isfuture  # type: ignore[misc]
