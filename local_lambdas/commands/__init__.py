"""What each command does once cli.py has read its options: serve and check (serve.py), run
(run.py), restart (restart.py), completion (completion.py); export is export/'s."""
