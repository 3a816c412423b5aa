#!/usr/bin/env python3
"""A child that never listens: it stays STARTING until the test is done with it."""

import time

print("starting slowly", flush=True)
time.sleep(3600)
