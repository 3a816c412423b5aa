"""Supervision: everything that starts, watches and stops the manifest's child processes.

supervisor.py holds one run's processes (a pool per <process>, its <task>s, the start order
and reloads); pool.py and roster.py one <process>'s instances and who serves a request;
instance.py and child_run.py one child's life cycle, readiness.py whether it listens yet,
spawned.py the OS process itself. The request side reads their state (states.py, explain.py)
and never changes it.
"""
