"""The proxy's own endpoints under its reserved prefix (default /_/): health, readiness,
status, metrics and restarts (endpoints.py, metrics.py), and the dashboard: its page
(dashboard.html, served by dashboard.py), each open page's event stream (event_stream.py),
the last requests (inspector.py) and the console's last lines (console_log.py) it shows."""
