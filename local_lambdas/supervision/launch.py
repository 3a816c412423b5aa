"""What a child process is started with: the address it must listen on, its environment (the
manifest's and the env files', then ours) and its arguments, ${NAME}s expanded
(variables.py). Ours, in docs/protocol.md's words: LOCAL_LAMBDAS_ID and _INSTANCE, the run's
LOCAL_LAMBDAS_TOKEN and LOCAL_LAMBDAS_URL, PIPE_ADDRESS and PIPE_FRAMING in the pipe modes,
HTTP_ADDRESS and PORT in the HTTP ones (neither in mode none), and the spawn mark that finds
its descendants (orphans.SPAWN_MARK). SocketNames hands out the pipe addresses.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from local_lambdas import _compat, variables
from local_lambdas._compat import listeners, processes
from local_lambdas.config import Mode, Process
from local_lambdas.supervision import readiness

# What every child and task of a run is given besides its own values: the run's token
# and URL (Supervisor.run_env); none where a test starts processes without a run.
NO_RUN_ENV: Mapping[str, str] = MappingProxyType({})
_SPAWNS = itertools.count(1)  # numbers each process spawned in this run, for its mark


class Launch(NamedTuple):
    address: str  # where the child must listen: a pipe's address, 127.0.0.1:PORT, or "" (none)
    env: dict[str, str]
    args: list[str]
    mark: str  # the spawn mark of this process, unique in the run


def prepare(
    process: Process,
    *,
    name: str,
    index: int,
    pipe: str | None,
    run_mark: str,
    run_env: Mapping[str, str],
) -> Launch:
    """The next process of instance `index` (`name`) of `process`; `pipe`, its address in
    the pipe modes. A socket file left there by a crash is removed (one that belongs to
    another user is not ours to remove: OSError, said as the cause), and a folder removed
    since the run began is made again; a fixed <port> that another program listens on is
    an OSError naming it."""
    own = {"LOCAL_LAMBDAS_ID": name, "LOCAL_LAMBDAS_INSTANCE": str(index), **run_env}
    mark = own[processes.SPAWN_MARK] = f"{run_mark}.{next(_SPAWNS)}."
    if pipe is not None:
        if not _compat.IS_WINDOWS:
            # Its folder, removed while the run went on (a temp cleaner, an rm of the run's
            # folder), is made again, private as at the start: else no restart could listen.
            Path(pipe).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        listeners.remove_stale(pipe)
        address = own["PIPE_ADDRESS"] = pipe
        keepalive = process.communication_mode is Mode.PIPE_KEEPALIVE
        own["PIPE_FRAMING"] = "lines" if keepalive else "oneshot"
    elif process.communication_mode is Mode.NONE:
        address = ""  # nothing is routed to it: it listens nowhere the proxy knows of
    else:
        if process.port:
            listeners.check_port_free(process.port)
        port = process.port or readiness.free_port()
        address = own["HTTP_ADDRESS"] = f"127.0.0.1:{port}"
        own["PORT"] = str(port)
    env, args = variables.child_environment(process, own)
    return Launch(address, env, args, mark)


class SocketNames:
    """Hands out pipe addresses: `<pipe_name>` when free, else `<pipe_name>-2`... (a socket
    file in `directory`, or on Windows a named pipe; see _compat.pipe_address)."""

    def __init__(self, directory: Path, *, plain: bool = False) -> None:
        self.directory = directory
        self._plain = plain
        self._taken: dict[str, str] = {}  # address -> name

    def take(self, base: str) -> str:
        name, n = base, 1
        while name in self._taken.values():
            n += 1
            name = f"{base}-{n}"
        address = _compat.pipe_address(self.directory, name, plain=self._plain)
        self._taken[address] = name
        return address

    def give_back(self, address: str) -> None:
        self._taken.pop(address, None)
