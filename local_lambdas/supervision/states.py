"""The states of a child (an instance of a manifest <process>), and how it walks them:

    STARTING -> READY -> (exit) -> BACKOFF -> STARTING ...
                      -> (exit, policy says stay down) -> EXITED
                      -> (too many quick exits)        -> FATAL
                      -> (runs, stopped listening)     -> STARTING -> READY ...
    any state -> STOPPING -> STOPPED  (on stop)

A process that runs on but stops listening (a dev server that reloads itself: Django's
runserver, nodemon; seen when a request to it fails) is STARTING again, with no time limit,
until it listens again or exits: it is waiting for a change of its code, not failing.
`Instance._set_state` (instance.py) is the only place a state changes.
"""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    READY = "READY"
    BACKOFF = "BACKOFF"
    EXITED = "EXITED"
    FATAL = "FATAL"
    STOPPING = "STOPPING"
    IDLE = "IDLE"  # a process's, not an instance's: stopped until its next request
