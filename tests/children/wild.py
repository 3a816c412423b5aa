#!/usr/bin/env python3
"""Children as they are found in the wild, picked by the first argument:

ipv6-loopback   a web server on [::1]:$PORT only
daemon MARK     starts `sleep MARK` in a session of its own (as setsid or a daemon would),
                then serves one-shot pipe requests like behave.py
helpers MARK    starts `sleep MARK` twice with no environment, in sessions of their own:
                one its child, one a double fork's (its parent gone); then as daemon
listens-for S   a daemon that, for each port number sent to its Unix socket S, serves HTTP
                there (as dockerd's docker-proxy does for `docker run -p`)
asks S          sends its $PORT to that daemon, then sleeps (as `docker run` stays attached)
forking MARK    forks off a daemon (a session of its own, SIGTERM ignored) that starts
                `sleep MARK` in sessions of their own every 2 ms, up to 300, and exits 0
                once it has started ten: a wrapper leaving a daemon that starts workers
other-port PORT prints "Running on http://127.0.0.1:PORT" as dev servers do, listens there
                (not on $PORT), and says when it gets SIGTERM
fixed-socket P  listens on the Unix socket P, not on $PIPE_ADDRESS (a path written into it,
                as the earlier tool's /tmp/<pipe_name>), and never accepts
sleep           prints a line and sleeps (listens nowhere)
stuck           listens on $PORT with a backlog of one and never accepts, as a server
                stopped at a breakpoint
flood           prints numbered lines as fast as it can, for ever
reloading FLAG  a web server on $PORT that, as a dev server reloading itself (Django's
                runserver, nodemon), closes its port after answering GET .../reload, prints
                "reloading", and listens again once the file FLAG exists (then removed);
                echoes a POST's body (chunked or not)
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

what = sys.argv[1]
# A listen queue of 128, not socketserver's 5: past it, the kernel drops a connection and the
# proxy's connect is tried again a second later (TCP's first retransmission).
HTTPServer.request_queue_size = 128


class Reloading(HTTPServer):
    reload = False  # set by a GET of .../reload: the port is closed once it is answered


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f'{{"pid": {os.getpid()}}}'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if isinstance(self.server, Reloading):
            self.server.reload = self.path.endswith("/reload")

    def do_POST(self) -> None:
        body = b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            while size := int(self.rfile.readline(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if what == "ipv6-loopback":

    class V6(HTTPServer):
        address_family = socket.AF_INET6

    V6(("::1", int(os.environ["PORT"])), Answer).serve_forever()
elif what == "daemon":
    subprocess.Popen(["sleep", sys.argv[2]], start_new_session=True)
    here = os.path.dirname(os.path.abspath(__file__))
    os.execv(sys.executable, [sys.executable, os.path.join(here, "behave.py")])
elif what == "helpers":  # (ARGV: MARK) helpers with no environment, then serves as "daemon"
    subprocess.Popen(["/bin/sleep", sys.argv[2]], env={}, start_new_session=True)  # its child
    middle = os.fork()
    if middle == 0:  # a double fork: the helper's parent goes, and the proxy adopts it
        os.setsid()
        if os.fork() == 0:
            os.execve("/bin/sleep", ["sleep", sys.argv[2]], {})
        os._exit(0)
    os.waitpid(middle, 0)
    here = os.path.dirname(os.path.abspath(__file__))
    os.execv(sys.executable, [sys.executable, os.path.join(here, "behave.py")])
elif what == "listens-for":  # (ARGV: SOCKET) a daemon that listens for whoever asks
    control = socket.socket(socket.AF_UNIX)
    control.bind(sys.argv[2])
    control.listen()
    while True:
        conn, _ = control.accept()
        asked = int(conn.recv(16))
        web = HTTPServer(("127.0.0.1", asked), Answer)  # its pid in each answer
        threading.Thread(target=web.serve_forever, daemon=True).start()
        conn.sendall(b"listening")
        conn.close()
elif what == "asks":  # (ARGV: SOCKET) as `docker run -p $PORT:80`: asks the daemon to listen
    control = socket.socket(socket.AF_UNIX)
    control.connect(sys.argv[2])
    control.sendall(os.environ["PORT"].encode())
    print("asked:", control.recv(16).decode(), flush=True)
    time.sleep(3600)
elif what == "clears-env-daemon":  # as nginx without `daemon off;` (ARGV: MARK)
    if len(sys.argv) == 3:  # started: fork the daemon off with no environment, and exit 0
        port = os.environ["PORT"]
        if os.fork() == 0:
            os.setsid()
            os.execve(sys.executable, [sys.executable, "-S", __file__, what, sys.argv[2], port], {})
        sys.exit(0)
    server = socket.create_server(("127.0.0.1", int(sys.argv[3])))
    if os.fork() == 0:  # a worker in the daemon's group, holding its port
        while True:
            conn, _ = server.accept()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.close()
    time.sleep(3600)
elif what == "forking":
    started, starting = os.pipe()
    if os.fork() == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for n in range(300):
            os.posix_spawn("/bin/sleep", ["sleep", sys.argv[2]], os.environ, setsid=True)
            if n == 10:
                os.write(starting, b"!")
            time.sleep(0.002)
        os._exit(0)
    os.close(starting)  # so that a daemon gone early is an end of input, not a wait for ever
    os.read(started, 1)
elif what == "other-port":
    signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(0)))
    print(f" * Running on http://127.0.0.1:{sys.argv[2]}", flush=True)
    HTTPServer(("127.0.0.1", int(sys.argv[2])), Answer).serve_forever()
elif what == "fixed-socket":
    fixed = socket.socket(socket.AF_UNIX)
    fixed.bind(sys.argv[2])
    fixed.listen()
    print(f"listening on {sys.argv[2]}", flush=True)
    time.sleep(3600)
elif what == "stuck":
    server = socket.create_server(("127.0.0.1", int(os.environ["PORT"])), backlog=1)
    print("listening, never accepting", flush=True)
    time.sleep(3600)
elif what == "reloading":
    flag = sys.argv[2]
    while True:
        web = Reloading(("127.0.0.1", int(os.environ["PORT"])), Answer)
        while not web.reload:
            web.handle_request()
        web.server_close()
        print("reloading", flush=True)
        while not os.path.exists(flag):
            time.sleep(0.01)
        os.unlink(flag)
elif what == "sleep":
    print("up, listening nowhere", flush=True)
    time.sleep(3600)
elif what == "flood":
    n = 0
    while True:
        n += 1
        sys.stdout.write(f"flood line {n} " + "x" * 60 + "\n")
