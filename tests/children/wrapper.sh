#!/bin/sh
# A shell wrapper that starts the real child in the background, as `npm start` does, and
# records the grandchild's pid so a test can check that it is gone after a stop.
python3 "$(dirname "$0")/behave.py" &
echo $! > "$GRANDCHILD_PID_FILE"
# Ignore SIGTERM like a careless wrapper: the stop must still reach the grandchild.
trap '' TERM
wait
