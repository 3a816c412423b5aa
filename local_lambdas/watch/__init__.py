"""`--watch`: reload when the manifest changes, restart a process when its files change.

watcher.py runs the watch and what it sets off; paths.py says which paths it follows and
whom a change restarts; edits.py which changed files are edits; ignored.py what it never
watches (read by `--help` too, so this package imports nothing: watchfiles loads with
watcher.py alone).
"""
