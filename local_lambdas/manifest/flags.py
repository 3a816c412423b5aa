"""What the command line's flags change in a loaded manifest: --instances and --no-timeouts."""

from __future__ import annotations

from local_lambdas.config import NO_LIMIT, Manifest


def with_instances(loaded: Manifest, instances: int) -> Manifest:
    """--instances N: N instances of every process but those with a fixed <port>, which
    only one instance can listen on (said in a warning)."""
    fixed = {p.id: p.port for p in loaded.processes if p.port and instances > 1}
    processes = tuple(
        p if p.id in fixed else p.model_copy(update={"instances": instances})
        for p in loaded.processes
    )
    said = tuple(
        f'<process id="{pid}">: --instances {instances} does not apply: one instance only can '
        f"listen on its <port> {port}"
        for pid, port in fixed.items()
    )
    return loaded.model_copy(update={"processes": processes, "warnings": loaded.warnings + said})


def without_timeouts(loaded: Manifest) -> Manifest:
    """--no-timeouts: a request waits for its child, and a child for its first listen, as
    long as it takes (a breakpoint)."""
    unbounded = {"timeout": NO_LIMIT, "startup_timeout": NO_LIMIT, "queue_timeout": NO_LIMIT}
    processes = tuple(p.model_copy(update=unbounded) for p in loaded.processes)
    return loaded.model_copy(update={"processes": processes})
