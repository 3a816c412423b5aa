#!/usr/bin/env python3
"""A test child nothing is routed to (<communication_mode>none</communication_mode>), as a
queue worker is: it listens nowhere, writes what it was started with (its pid and the
variables local-lambdas sets) to the JSON file its argument names, then counts jobs in that
file's `.jobs` sibling, one line a tenth of a second, until it is stopped.
"""

import json
import os
import sys
import time

NAMES = ("LOCAL_LAMBDAS_ID", "LOCAL_LAMBDAS_INSTANCE", "PORT", "HTTP_ADDRESS", "PIPE_ADDRESS")


def main() -> None:
    said = sys.argv[1]
    facts = {"pid": os.getpid(), "env": {name: os.environ.get(name) for name in NAMES}}
    with open(said + ".part", "w") as file:
        json.dump(facts, file)
    os.replace(said + ".part", said)  # whole, or not there
    print(f"worker {os.environ['LOCAL_LAMBDAS_ID']} up, pid {os.getpid()}", flush=True)
    with open(said + ".jobs", "a") as jobs:
        for job in range(1, 1_000_000):
            jobs.write(f"{job}\n")
            jobs.flush()
            time.sleep(0.1)  # the worker's own pace, not a wait for anything


if __name__ == "__main__":
    main()
