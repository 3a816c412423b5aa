#!/usr/bin/env python3
"""Windows only: a one-shot pipe child with a single pipe instance at a time and a slow
handler, so that concurrent clients meet ERROR_PIPE_BUSY. It also starts a grandchild and
reports its pid, so a test can see the whole tree go. Written with pywin32 directly."""

import base64
import json
import os
import subprocess
import sys
import time

import pywintypes
import win32file
import win32pipe

grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
address = os.environ["PIPE_ADDRESS"]
print(f"win_single up, grandchild {grandchild.pid}", flush=True)
while True:
    pipe = win32pipe.CreateNamedPipe(
        address,
        win32pipe.PIPE_ACCESS_DUPLEX,
        win32pipe.PIPE_TYPE_BYTE | win32pipe.PIPE_READMODE_BYTE | win32pipe.PIPE_WAIT,
        1,
        65536,
        65536,
        0,
        None,  # one instance: a second client finds the pipe busy
    )
    try:
        win32pipe.ConnectNamedPipe(pipe, None)
    except pywintypes.error as exc:
        if exc.winerror != 535:
            raise
    data = b""
    while True:  # read until the JSON parses: a Windows pipe has no half-close
        data += win32file.ReadFile(pipe, 65536)[1]
        try:
            request = json.loads(data)
            break
        except ValueError:
            continue
    time.sleep(0.2)
    body = json.dumps({"uri": request["uri"], "pid": os.getpid(), "grandchild": grandchild.pid})
    win32file.WriteFile(
        pipe, json.dumps({"body": base64.b64encode(body.encode()).decode()}).encode()
    )
    win32file.FlushFileBuffers(pipe)
    win32pipe.DisconnectNamedPipe(pipe)
    win32file.CloseHandle(pipe)
