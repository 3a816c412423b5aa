"""The manifest: manifest.xml read into validated config (`load`), every problem said at once
with its line. loading.py reads the file and checks it against manifest.xsd last;
reader.py reads each <process> and <task> by the vocabulary of elements.py; checks.py
checks across processes; env.py the env files and ${NAME}s; paths.py what the manifest
names on this machine; flags.py what --instances and --no-timeouts change once loaded."""

from local_lambdas.manifest.loading import load

__all__ = ["load"]
