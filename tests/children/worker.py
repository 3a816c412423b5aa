#!/usr/bin/env python3
"""A test child nothing is routed to (<communication_mode>none</communication_mode>), as a
queue worker is: it listens nowhere, writes what it was started with (its pid, the variables
local-lambdas sets, and whether it runs alone: no other copy holds the lock beside that file,
as a scheduler's pid file makes sure) to the JSON file its argument names, then counts jobs
in that file's `.jobs` sibling, one line a tenth of a second, until it is stopped. Asked to
stop (SIGTERM), it finishes its job at hand, half a second, as workers stop warm.
"""

import json
import os
import signal
import sys
import time

try:
    import fcntl
except ImportError:  # Windows: no lock taken ("alone" is None)
    fcntl = None  # type: ignore[assignment]

NAMES = ("LOCAL_LAMBDAS_ID", "LOCAL_LAMBDAS_INSTANCE", "PORT", "HTTP_ADDRESS", "PIPE_ADDRESS")
stopping = False


def stop(signum: int, frame: object) -> None:
    global stopping
    stopping = True


def main() -> None:
    said = sys.argv[1]
    signal.signal(signal.SIGTERM, stop)
    with open(said + ".lock", "w") as lock, open(said + ".jobs", "a") as jobs:
        alone = None
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
        env = {name: os.environ.get(name) for name in NAMES}
        with open(said + ".part", "w") as file:
            json.dump({"pid": os.getpid(), "env": env, "alone": alone}, file)
        os.replace(said + ".part", said)  # whole, or not there
        print(f"worker {env['LOCAL_LAMBDAS_ID']} up, pid {os.getpid()}", flush=True)
        job = 0
        while not stopping:
            job += 1
            jobs.write(f"{job}\n")
            jobs.flush()
            time.sleep(0.1)  # the worker's own pace, not a wait for anything
        time.sleep(0.5)  # the job at hand, finished before it stops


if __name__ == "__main__":
    main()
