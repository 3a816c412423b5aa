"""What `--watch` never watches beyond watchfiles' own defaults: read by the watcher (watcher.py)
and listed in `--help`, so it lives apart from both (watcher.py loads watchfiles, config.py
pydantic; the command line loads neither before reading its arguments)."""

from __future__ import annotations

# Beyond watchfiles' own (.git, __pycache__, node_modules...): what no one means to watch
# (logs, rotated ones too: app.log.1, app.log.2026-12-03; editors' temporary files), what
# a running child writes beside its code: SQLite databases and their journals (Django's
# db.sqlite3, Flask's instance/*.sqlite), pid files; and what a test run in another
# terminal writes beside it (coverage.py's data and reports).
WATCH_IGNORE = (
    "*.log", "*.log.*", "*.tmp", "*.temp", "*.bak", "*.orig", "*.swp", "*.swx", "*~", ".#*",
    "#*#", "4913", "sed??????", ".goutputstream-*", "*___jb_tmp___", "*___jb_old___",
    "*.kate-swp", ".~lock.*#", ".DS_Store", "*.db", "*.sqlite", "*.sqlite3", "*-journal",
    "*-wal", "*-shm", "*.pid", ".coverage", ".coverage.*", "coverage.xml", "*/htmlcov/*",
)  # fmt: skip
