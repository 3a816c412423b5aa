"""What a person is told about a child (supervision/explain.py, readiness.py): why it is not
ready, where it listens instead, how it ended, the project it was not installed in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from local_lambdas.supervision import explain
from tests.helpers import process_model


@pytest.mark.parametrize(("mode", "address", "foreign", "lines", "says"), [
    ("http", "127.0.0.1:4000", False, [], "not ready within 10s (<startup_timeout>): "
     "nothing listened on http://127.0.0.1:4000"),
    ("http", "127.0.0.1:4000", True, [], "another program listens on http://127.0.0.1:4000"),
    ("http", "127.0.0.1:4000", False, [" * Running on http://127.0.0.1:5000"],
     "it printed port 5000, which is not its $PORT (4000): set <port>5000</port>"),
    ("http", "127.0.0.1:4000", False, ["listening on port 4000"], "nothing listened on "
     "http://127.0.0.1:4000"),  # its own port printed: no advice
    ("pipe", "/run/x/api", False, ["port 5000"], "nothing listened on /run/x/api"),
])  # fmt: skip
def test_why_a_child_is_not_ready(
    mode: str, address: str, foreign: bool, lines: list[str], says: str
) -> None:
    told = explain.not_ready_in_time(
        process_model(mode), address, foreign=foreign, last_lines=lines
    )
    assert says in told
    assert ("printed port" in told) == ("printed port" in says)


@pytest.mark.parametrize(("mode", "address", "elsewhere", "says"), [
    ("http", "127.0.0.1:4000", ["0.0.0.0:8080"],
     "it listens on 0.0.0.0:8080 instead: set <port>8080</port>, or have it listen on "
     "$PORT (4000)"),
    ("http", "127.0.0.1:4000", ["[::]:8080", "[::]:9229"],
     "it listens on [::]:8080, [::]:9229 instead: set <port> to its HTTP port, or have it "
     "listen on $PORT (4000)"),
    ("http", "127.0.0.1:4000", ["10.0.0.5:4000"],
     "it listens on 10.0.0.5:4000, where 127.0.0.1 does not reach it: have it listen on "
     "127.0.0.1 or on every address (0.0.0.0)"),
    ("http", "127.0.0.1:4000", ["/tmp/app.sock"],
     "it listens on /tmp/app.sock instead: a child on a socket file goes under "
     "<communication_mode>pipe</communication_mode>"),
    ("pipe", "/run/x/api", ["127.0.0.1:5000"],
     "it listens on 127.0.0.1:5000 instead: a server on a port goes under "
     "<communication_mode>passthrough</communication_mode>"),
    ("pipe", "/run/x/api", ["/tmp/app.sock"],
     "it listens on /tmp/app.sock instead: a pipe child listens at $PIPE_ADDRESS"),
    ("pipe", "/run/x/api", ["/a", "/b", "/c", "/d"], "it listens on /a, /b, /c ... instead"),
    # The earlier tool's /tmp/<pipe_name>, written into the child: --socket-dir puts it there.
    ("pipe", "/run/x/api", ["/tmp/api"],
     "it listens on /tmp/api instead: a pipe child listens at $PIPE_ADDRESS, or run the "
     "proxy with --socket-dir /tmp to put it there"),
])  # fmt: skip
def test_where_a_child_listens_instead_is_named(
    mode: str, address: str, elsewhere: list[str], says: str
) -> None:
    """What the kernel tells of the child's listening sockets outweighs the ports it printed."""
    told = explain.not_ready_in_time(process_model(mode), address, foreign=False,
                                     last_lines=["port 7000"], elsewhere=elsewhere)  # fmt: skip
    assert told.startswith("not ready within 10s (<startup_timeout>): nothing listened on ")
    assert says in told and "printed port" not in told


@pytest.mark.parametrize(("mode", "lines", "elsewhere", "says"), [
    # Sure: where it will stay. A pipe child at its pipe's name in another folder...
    ("pipe", [], ["/tmp/api"], "it listens on /tmp/api instead: a pipe child listens at "
     "$PIPE_ADDRESS, or run the proxy with --socket-dir /tmp to put it there"),
    # ... a server at the port it printed.
    ("http", [" * Running on http://127.0.0.1:5000"], ["127.0.0.1:5000"],
     "it printed port 5000, which is not its $PORT (4000): set <port>5000</port>"),
    # Unsure: another socket, a port it did not print (an inspector's, gRPC's), a printed
    # port it does not hold: it may listen at its address next.
    ("pipe", [], ["/tmp/admin.sock"], None),
    ("pipe", [], ["127.0.0.1:5000"], None),
    ("http", [], ["127.0.0.1:9229"], None),
    ("http", ["gRPC on port 50051"], ["127.0.0.1:9229"], None),
    ("http", ["listening on port 4000"], ["127.0.0.1:4000"], None),  # its own
])  # fmt: skip
def test_where_a_starting_child_surely_listens_instead(
    mode: str, lines: list[str], elsewhere: list[str], says: str | None
) -> None:
    address = "/run/x/api" if mode == "pipe" else "127.0.0.1:4000"
    told = explain.surely_elsewhere(
        process_model(mode), address, last_lines=lines, elsewhere=elsewhere
    )
    assert told == says if says is None else told is not None and says in told


def test_a_port_it_printed_and_listens_on_is_said_as_printed() -> None:
    """The port a dev server printed, found listening too: said as the line it printed
    (the one the user sees), the other ports it holds aside."""
    told = explain.not_ready_in_time(
        process_model(), "127.0.0.1:4000", foreign=False,
        last_lines=[" * Running on http://127.0.0.1:5000", " * Debugger PIN: 145-831-020"],
        elsewhere=["127.0.0.1:5000", "127.0.0.1:9229"],
    )  # fmt: skip
    assert told.endswith("nothing listened on http://127.0.0.1:4000; it printed port 5000, "
                         "which is not its $PORT (4000): set <port>5000</port>, or pass it "
                         "${PORT}")  # fmt: skip


def test_a_ready_path_that_is_refused_is_named() -> None:
    told = explain.not_ready_in_time(
        process_model(), "127.0.0.1:4000", foreign=False, last_lines=[],
        refused="GET /healthz answered 503")  # fmt: skip
    assert told == ("not ready within 10s (<startup_timeout>): it listens on "
                    "http://127.0.0.1:4000, but its <ready_path>: GET /healthz answered 503 (a "
                    "2xx or 3xx is wanted)")  # fmt: skip


@pytest.mark.parametrize(("code", "says"), [
    (None, "could not be started"), (0, "exited with code 0"), (3, "exited with code 3"),
    (-15, "was killed by SIGTERM"), (-250, "was killed by signal 250"),
    pytest.param(-9, "was killed by SIGKILL",
                 marks=pytest.mark.skipif(sys.platform == "win32", reason="no SIGKILL")),
])  # fmt: skip
def test_how_a_child_ended(code: int | None, says: str) -> None:
    assert explain.ended(code) == says


def test_a_node_project_not_installed_is_named_with_its_installer(tmp_path: Path) -> None:
    """A fresh clone before `npm install`: package.json names dependencies, no node_modules
    here or above. The lock file says which tool installs it; Plug'n'Play needs none."""
    project = tmp_path / "web"
    project.mkdir()
    assert explain.uninstalled(project) == ""  # no package.json
    (project / "package.json").write_text('{"scripts": {"dev": "vite"}}')
    assert explain.uninstalled(project) == ""  # nothing to install
    (project / "package.json").write_text('{"devDependencies": {"vite": "^5.0.0"}}')
    assert explain.uninstalled(project) == (
        "its package.json names dependencies that are not installed (no node_modules): run "
        f"npm install in {project}, or give it <build>npm install</build>"
    )
    (project / "yarn.lock").write_text("")
    assert "run yarn install in " in explain.uninstalled(project)
    (project / ".pnp.cjs").write_text("")  # Yarn's Plug'n'Play
    assert explain.uninstalled(project) == ""
    (project / ".pnp.cjs").unlink()
    (tmp_path / "node_modules").mkdir()  # a workspace's, above it: Node.js looks up there
    assert explain.uninstalled(project) == ""
    (project / "package.json").write_text("{not json")
    assert explain.uninstalled(project) == ""


def test_a_python_child_outside_its_projects_virtualenv_is_named_with_it(
    tmp_path: Path,
) -> None:
    """A Python child that cannot import a module, run by an interpreter (or a console
    script) other than its project's virtual environment's, here or above: that one named."""
    project = tmp_path / "api"
    (project / "src").mkdir(parents=True)
    missing = "ModuleNotFoundError: No module named 'flask'"
    bin_dir = "Scripts" if sys.platform == "win32" else "bin"
    assert explain.outside_venv(project / "src", "/usr/bin/python3", missing) == ""  # none
    venv = project / "venv"
    (venv / bin_dir).mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert explain.outside_venv(project / "src", "/usr/bin/python3", missing) == (
        f"it does not run in the virtual environment {venv}: start it from there"
    )  # (no python3 of its own to name)
    (venv / bin_dir / "python3").write_text("")
    assert explain.outside_venv(project / "src", "/usr/bin/python3", missing) == (
        f"it does not run in the virtual environment {venv}, which may hold what it imports: "
        f"give <executable>{venv / bin_dir / 'python3'}</executable>, or start local-lambdas "
        "with it activated"
    )
    own = str(venv / bin_dir / "python3")
    assert explain.outside_venv(project / "src", own, missing) == ""  # it runs there
    assert explain.outside_venv(project / "src", "/usr/bin/python3", "Error: boom") == ""
    old = "ImportError: No module named yaml"  # (Python 2's words, still printed by some)
    assert explain.outside_venv(project, "/usr/bin/python3", old) != ""
