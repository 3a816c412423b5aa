"""The line that says why a child ended (supervision/failure_line.py), in what real programs
print as they die."""

from __future__ import annotations

import pytest

from local_lambdas.supervision import failure_line

_NODE_CRASH = """node:events:502
      throw er; // Unhandled 'error' event
      ^

Error: listen EADDRINUSE: address already in use 127.0.0.1:3400
    at Server.setupListenHandle [as _listen2] (node:net:1908:16)
    at process.processTicksAndRejections (node:internal/process/task_queues:83:21)
Emitted 'error' event on Server instance at:
    at emitErrorNT (node:net:1944:8) {
  code: 'EADDRINUSE',
  port: 3400
}

Node.js v20.20.2"""


_NODE_ESM = """node:internal/modules/esm/resolve:854
  throw new ERR_MODULE_NOT_FOUND(packageName, fileURLToPath(base), null);
        ^

Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'express' imported from /app/server.mjs
    at packageResolve (node:internal/modules/esm/resolve:854:9)
    at defaultResolve (node:internal/modules/esm/resolve:1157:11) {
  code: 'ERR_MODULE_NOT_FOUND'
}

Node.js v20.20.2"""

# Express 5 refusing Express 4's `app.get("*")`, under nodemon under concurrently (`npm run
# dev`: "concurrently 'nodemon server.js' 'node side.js'"), each line tagged by concurrently.
_CONCURRENTLY = "\n".join(
    [
        "> x@1.0.0 dev",
        '> concurrently -n api,side "nodemon server.js" "node side.js"',
        "",
        "[side] side worker 14330",
        "[api] [nodemon] starting `node server.js`",
        "[api] /app/node_modules/path-to-regexp/dist/index.js:108",
        "[api]                     throw new PathError(`Missing parameter name`, str);",
        "[api]                     ^",
        "[api] ",
        "[api] PathError [TypeError]: Missing parameter name at index 1: *; visit "
        "https://git.new/pathToRegexpError for info",
        "[api]     at consumeUntil (/app/node_modules/path-to-regexp/dist/index.js:108:27)",
        "[api]     at app.<computed> [as get] (/app/node_modules/express/lib/app.js:478:22) {",
        "[api]   originalPath: '*'",
        "[api] }",
        "[api] ",
        "[api] Node.js v20.20.2",
        "[api] [nodemon] app crashed - waiting for file changes before starting...",
    ]
)


# Spring Boot's failed start (its log line's ":" introduces a banner, not the reason).
_SPRING = "\n".join([
    "2026-12-07T05:00:01.000Z ERROR 1234 --- [           main] o.s.b.d.LoggingFailureAnaly"
    "sisReporter   : ",
    "", "***************************", "APPLICATION FAILED TO START",
    "***************************", "", "Description:", "",
    "Web server failed to start. Port 8080 was already in use.", "", "Action:", "",
    "Identify and stop the process that's listening on port 8080 or configure this "
    "application to listen on another port.",
])  # fmt: skip
_CARGO = "\n".join([
    "   Compiling x v0.1.0 (/app)", "error[E0425]: cannot find value `y` in this scope",
    " --> src/main.rs:2:20", "  |", '2 |     println!("{}", y);',
    "  |                    ^ not found in this scope", "",
    "For more information about this error, try `rustc --explain E0425`.",
    'error: could not compile `x` (bin "x") due to 1 previous error',
])  # fmt: skip
# `python manage.py runserver` whose settings are wrong: an exception not named *Error.
_DJANGO = "\n".join([
    "Watching for file changes with StatReloader", "Exception in thread django-main-thread:",
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.11/threading.py", line 1045, in _bootstrap_inner',
    "    self.run()",
    "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not be empty.",
])  # fmt: skip
# gunicorn 23 given an app it cannot import: its own account of the failure comes last.
_GUNICORN = "\n".join([
    "[2026-12-07 05:21:29 +0000] [23253] [ERROR] Exception in worker process",
    "Traceback (most recent call last):",
    '  File "/venv/lib/python3.11/site-packages/gunicorn/util.py", line 420, in import_app',
    "    mod = importlib.import_module(module)",
    "          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    "ModuleNotFoundError: No module named 'nomod'",
    "No module named 'nomod'",
    "[2026-12-07 05:21:29 +0000] [23253] [INFO] Worker exiting (pid: 23253)",
    "[2026-12-07 05:21:30 +0000] [23249] [ERROR] Worker (pid:23253) exited with code 3.",
    "[2026-12-07 05:21:30 +0000] [23249] [ERROR] Shutting down: Master",
    "[2026-12-07 05:21:30 +0000] [23249] [ERROR] Reason: Worker failed to boot.",
])  # fmt: skip
# A FastAPI lifespan's asyncio.TaskGroup failing under uvicorn (Python 3.11): an exception
# group's traceback, its lines in a gutter, then uvicorn's account.
_EXCEPTION_GROUP = "\n".join([
    "INFO:     Waiting for application startup.",
    "ERROR:    Traceback (most recent call last):",
    '  File "/venv/lib/python3.11/site-packages/starlette/routing.py", line 694, in lifespan',
    "    async with self.lifespan_context(app) as maybe_state:",
    "  + Exception Group Traceback (most recent call last):",
    '  |   File "/app/fa.py", line 6, in lifespan',
    "  |     async with asyncio.TaskGroup() as tg:",
    "  | ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)",
    "  +-+---------------- 1 ----------------",
    "    | Traceback (most recent call last):",
    '    |   File "uvloop/loop.pyx", line 2017, in uvloop.loop.Loop.create_connection',
    "    | ConnectionRefusedError: [Errno 111] Connection refused",
    "    +------------------------------------",
    "",
    "ERROR:    Application startup failed. Exiting.",
])  # fmt: skip
# A promise rejected with a string (Node.js 20): the reason is past the quote's 200 characters.
_REJECTION = "\n".join([
    "node:internal/process/promises:289", "            triggerUncaughtException(err, true);",
    "            ^", "",
    "[UnhandledPromiseRejection: This error originated either by throwing inside of an async "
    "function without a catch block, or by rejecting a promise which was not handled with "
    '.catch(). The promise rejected with the reason "connect ECONNREFUSED 127.0.0.1:5432".] {',
    "  code: 'ERR_UNHANDLED_REJECTION'", "}", "", "Node.js v20.20.2",
])  # fmt: skip


# .NET 8's account of an exception nothing caught: its inner exceptions, each trace ended by
# a rule. Maven's and Gradle's account of a program they ran (`mvn spring-boot:run`, `gradle
# bootRun`) that failed, and their advice, after what it said. These three are written from
# the formats their tools print, not captured here: this machine has no .NET, and Maven and
# Gradle need their plugin repositories, which it cannot reach.
_DOTNET = "\n".join([
    "Unhandled exception. System.InvalidOperationException: No connection string 'Default'.",
    " ---> System.ArgumentNullException: Value cannot be null. (Parameter 'connectionString')",
    "   at Program.<Main>$(String[] args) in /app/Program.cs:line 9",
    "   --- End of inner exception stack trace ---",
    "   at Program.<Main>$(String[] args) in /app/Program.cs:line 12",
])  # fmt: skip
_MAVEN = "\n".join([
    "starting: no config at /etc/demo.yml",
    "[INFO] " + "-" * 72, "[INFO] BUILD FAILURE", "[INFO] " + "-" * 72,
    "[INFO] Total time:  4.205 s", "[INFO] Finished at: 2026-12-07T10:00:01Z",
    "[INFO] " + "-" * 72,
    "[ERROR] Failed to execute goal org.springframework.boot:spring-boot-maven-plugin:3.2.0:run "
    "(default-cli) on project demo: Process terminated with exit code: 1 -> [Help 1]",
    "[ERROR] ", "[ERROR] To see the full stack trace of the errors, re-run Maven with the -e "
    "switch.", "[ERROR] Re-run Maven using the -X switch to enable full debug logging.",
    "[ERROR] ", "[ERROR] For more information about the errors and possible solutions, please "
    "read the following articles:",
    "[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/MojoExecutionException",
])  # fmt: skip
_GRADLE = "\n".join([
    "starting: no config at /etc/demo.yml", "", "> Task :bootRun FAILED", "",
    "FAILURE: Build failed with an exception.", "", "* What went wrong:",
    "Execution failed for task ':bootRun'.",
    "> Process 'command '/usr/lib/jvm/java-17-openjdk-amd64/bin/java'' finished with non-zero "
    "exit value 1", "", "* Try:", "> Run with --stacktrace option to get the stack trace.",
    "> Get more help at https://help.gradle.org.", "", "BUILD FAILED in 5s",
    "3 actionable tasks: 1 executed, 2 up-to-date",
])  # fmt: skip


# What real programs print as they die (captured from each, their port taken, but for the
# three above), and the line that says why.
@pytest.mark.parametrize(("output", "says"), [
    (_NODE_CRASH, "Error: listen EADDRINUSE: address already in use 127.0.0.1:3400"),
    (_EXCEPTION_GROUP, "ConnectionRefusedError: [Errno 111] Connection refused"),
    ("INFO:     Waiting for application startup.\nERROR:    [Errno 111] Connection refused\n"
     "ERROR:    Application startup failed. Exiting.", "ERROR:    [Errno 111] Connection "
     "refused"),  # uvicorn, a lifespan that said why it failed
    (_GUNICORN, "ModuleNotFoundError: No module named 'nomod'"),
    (_SPRING, "Web server failed to start. Port 8080 was already in use."),
    (_CARGO, "error[E0425]: cannot find value `y` in this scope"),
    (_DJANGO, "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not "
     "be empty."),
    (_REJECTION, 'UnhandledPromiseRejection: The promise rejected with the reason "connect '
     'ECONNREFUSED 127.0.0.1:5432".'),
    ('Traceback (most recent call last):\n  File "a.py", line 2, in <module>\n    import yaml\n'
     "ModuleNotFoundError: No module named 'yaml'\n\nDuring handling of the above exception, "
     'another exception occurred:\n\nTraceback (most recent call last):\n  File "a.py", line '
     '4, in <module>\n    raise SystemExit("install pyyaml")\nSystemExit: install pyyaml',
     "SystemExit: install pyyaml"),  # the last of chained exceptions
    (_NODE_ESM, "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'express' imported from "
     "/app/server.mjs"),
    (_CONCURRENTLY, "[api] PathError [TypeError]: Missing parameter name at index 1: *; visit "
     "https://git.new/pathToRegexpError for info"),
    ("api-1  | Traceback (most recent call last):\napi-1  |   File \"app.py\", line 1, in "
     "<module>\napi-1  | ModuleNotFoundError: No module named 'flask'\napi-1 exited with code 1",
     "api-1  | ModuleNotFoundError: No module named 'flask'"),  # docker compose's tags
    ("12:00:00 web.1  | Error: That port is already in use.\n12:00:00 system | sending "
     "SIGTERMs", "12:00:00 web.1  | Error: That port is already in use."),  # honcho's
    ("INFO:     Application startup complete.\nERROR:    [Errno 98] error while attempting to "
     "bind on address ('127.0.0.1', 3400): address already in use\nINFO:     Waiting for "
     "application shutdown.\nINFO:     Application shutdown complete.",  # uvicorn
     "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 3400): "
     "address already in use"),
    ('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    '
     "sock.bind(binding)\n    ^^^^^^^^^^^^^^^^^^\nOSError: [Errno 98] Address already in use",
     "OSError: [Errno 98] Address already in use"),
    ("Run 'python manage.py migrate' to apply them.\nError: That port is already in use.",
     "Error: That port is already in use."),  # Django
    ("[ERROR] Connection in use: ('127.0.0.1', 3400)\n[ERROR] Can't connect to "
     "('127.0.0.1', 3400)", "[ERROR] Can't connect to ('127.0.0.1', 3400)"),  # gunicorn
    ("\nthread 'main' (21170) panicked at m.rs:1:72:\ncould not bind: address in use\nnote: "
     "run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
     "thread 'main' (21170) panicked at m.rs:1:72: could not bind: address in use"),
    ('Exception in thread "main" java.net.BindException: Address already in use\n\tat '
     "java.base/sun.nio.ch.Net.bind0(Native Method)",
     'Exception in thread "main" java.net.BindException: Address already in use'),
    ("panic: listen tcp :3400: bind: address already in use\n\ngoroutine 1 [running]:\n"
     "main.main()\n\t/src/main.go:9 +0x65\nexit status 2",
     "panic: listen tcp :3400: bind: address already in use"),
    ("2026/12/01 08:00:00 listen tcp 127.0.0.1:3400: bind: address already in use\n"
     "exit status 1", "2026/12/01 08:00:00 listen tcp 127.0.0.1:3400: bind: address already "
     "in use"),  # Go's log.Fatal under `go run`
    ("app.rb:3:in 'listen': boom (RuntimeError)\n\tfrom app.rb:7:in '<main>'",
     "app.rb:3:in 'listen': boom (RuntimeError)"),
    ("Address already in use\nPort 3400 is in use by another program. Either identify and "
     "stop that program, or start the server with a different port.",  # Flask
     "Port 3400 is in use by another program. Either identify and stop that program, or "
     "start the server with a different port."),
    ("cannot start: missing config\n", "cannot start: missing config"),
    # npm itself failing (npm 10): its first line that says something, not a blank "npm error"
    ('npm error Missing script: "start"\nnpm error\nnpm error Did you mean one of these?\n'
     "npm error   npm star # Mark your favorite packages\nnpm error A complete log of this "
     "run can be found in: /root/.npm/_logs/x.log", 'npm error Missing script: "start"'),
    ("npm error code ENOENT\nnpm error syscall open\nnpm error path /a/package.json\n"
     "npm error errno -2\nnpm error enoent Could not read package.json: Error: ENOENT: no "
     "such file or directory, open '/a/package.json'\nnpm error enoent This is related to "
     "npm not being able to find a file.",
     "npm error enoent Could not read package.json: Error: ENOENT: no such file or "
     "directory, open '/a/package.json'"),
    # A script npm ran that failed: the script's own line, not npm's account of the failure.
    ("> x@1.0.0 start\n> node server.js\n\nError: Cannot find module 'express'\n"
     "npm ERR! code 1\nnpm ERR! path /a\nnpm ERR! command failed\nnpm ERR! command sh -c "
     "node server.js", "Error: Cannot find module 'express'"),
    # yarn 1's account of a script that failed, or of no such script, after what it said.
    ("yarn run v1.22.22\n$ vite --port $PORT\n/bin/sh: 1: vite: not found\nerror Command "
     "failed with exit code 127.\ninfo Visit https://yarnpkg.com/en/docs/cli/run for "
     "documentation about this command.", "/bin/sh: 1: vite: not found"),
    ('yarn run v1.22.22\nerror Command "nosuch" not found.\ninfo Visit https://yarnpkg.com/en/'
     "docs/cli/run for documentation about this command.", 'error Command "nosuch" not found.'),
    ("./nope.sh\nmake: ./nope.sh: No such file or directory\nmake: *** [Makefile:2: run] Error "
     "127", "make: ./nope.sh: No such file or directory"),  # make's account of its recipe
    ("Can't locate Mojolicious/Lite.pm in @INC (you may need to install the Mojolicious::Lite "
     "module) (@INC contains: /etc/perl) at app.pl line 1.\nBEGIN failed--compilation aborted "
     "at app.pl line 1.", "Can't locate Mojolicious/Lite.pm in @INC (you may need to install "
     "the Mojolicious::Lite module) (@INC contains: /etc/perl) at app.pl line 1."),  # Perl
    (_DOTNET, "Unhandled exception. System.InvalidOperationException: No connection string "
     "'Default'."),
    (_MAVEN, "starting: no config at /etc/demo.yml"),
    (_MAVEN.replace("starting: no config", "java.lang.IllegalStateException: no config"),
     "java.lang.IllegalStateException: no config at /etc/demo.yml"),
    (_GRADLE, "starting: no config at /etc/demo.yml"),
    ("[INFO] BUILD FAILURE\n[ERROR] Failed to execute goal on project demo: Could not resolve "
     "dependencies for project com.example:demo:jar:1.0", "[ERROR] Failed to execute goal on "
     "project demo: Could not resolve dependencies for project com.example:demo:jar:1.0"),
    ("", ""), ("\n  \n", ""),
])  # fmt: skip
def test_the_line_that_says_why_a_child_ended(output: str, says: str) -> None:
    assert failure_line.telling(output.split("\n")) == says
