"""`local-lambdas export compose|kubernetes`: the manifest handed over to a container engine.

layout.py is what both engines share (a container a process, the front, the environment);
compose.py writes the compose file, kubernetes.py the Kubernetes objects; command.py is the
command's line and what it prints.
"""
