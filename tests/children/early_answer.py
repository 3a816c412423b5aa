#!/usr/bin/env python3
"""A one-shot pipe child that answers 413 after reading only the first bytes of a request,
then closes: what a child refusing an oversized upload does."""

import json
import os
import socket

server = socket.socket(socket.AF_UNIX)
server.bind(os.environ["PIPE_ADDRESS"])
server.listen(16)
while True:
    conn, _ = server.accept()
    conn.recv(100)
    conn.sendall(json.dumps({"status": 413, "body": ""}).encode())
    conn.close()
