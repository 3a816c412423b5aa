"""Manifest loading: the earlier tool's format, and every problem reported with its line."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from local_lambdas import cli, executables, manifest
from local_lambdas._compat import IS_WINDOWS
from local_lambdas.config import Manifest, Mode
from local_lambdas.errors import ManifestError
from local_lambdas.manifest import elements as manifest_elements
from tests.helpers import (
    CHILDREN,
    UVLOOP,
    dedent,
    elf_program,
    loaded_by,
    process_xml,
    run_command,
    run_main,
)  # fmt: skip

LEGACY = dedent("""
    <?xml version="1.0" encoding="UTF-8"?>
    <manifest>
      <process>
        <id>api-service</id>
        <executable>./bin/api-service</executable>
        <arg>--port</arg>
        <arg>8080</arg>
        <route>/api/*</route>
        <pipe_name>api_service_pipe</pipe_name>
        <working_dir>./services/api</working_dir>
        <communication_mode>pipe</communication_mode>
      </process>
      <process>
        <id>web</id>
        <executable>python3</executable>
        <route>/web/*</route>
        <communication_mode>http</communication_mode>
      </process>
    </manifest>
""")


def load(tmp_path: Path, text: str | bytes) -> Manifest:
    """Load `text` (bytes: as they are) as a manifest, started from `tmp_path` (relative
    paths start there)."""
    path = tmp_path / "manifest.xml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path)


def test_earlier_tools_manifest_loads_unchanged(tmp_path: Path) -> None:
    exe = tmp_path / "services/api/bin/api-service"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    loaded = load(tmp_path, LEGACY)
    api, web = loaded.processes
    assert api.id == "api-service"
    assert api.args == ("--port", "8080")
    assert api.routes == ("/api/*",)
    assert api.pipe_name == "api_service_pipe"
    assert api.working_dir == tmp_path / "services/api"
    assert api.communication_mode is Mode.PIPE
    assert executables.resolve_executable(api) == str(exe)
    assert web.communication_mode is Mode.HTTP
    assert web.pipe_name == "web"  # defaults to the id
    assert web.working_dir == tmp_path


@pytest.mark.skipif(IS_WINDOWS, reason="a #! script as the executable; HOME is POSIX's")
def test_a_leading_tilde_is_the_home_directory_as_in_a_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`~/proj` in <working_dir>, a path <executable> and <env_file> is the home directory's
    (it was a folder named `~` under the start directory, "not a directory"); an <arg> goes
    to the child as it is."""
    home = tmp_path / "home"
    tool = home / "proj/bin/tool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (home / "proj/app.env").write_text("FROM_HOME=yes\n")
    monkeypatch.setenv("HOME", str(home))
    loaded = load(tmp_path, process(
        "<id>h</id>", "<executable>~/proj/bin/tool</executable>", "<arg>~/literal</arg>",
        "<working_dir>~/proj</working_dir>", "<env_file>~/proj/app.env</env_file>",
        "<route>/h/*</route>",
    ))  # fmt: skip
    [h] = loaded.processes
    assert h.working_dir == home / "proj"
    assert h.executable == str(tool)
    assert h.args == ("~/literal",)
    assert ("FROM_HOME", "yes") in h.environment


def process(*elements: str) -> str:
    body = "\n".join(f"    {e}" for e in elements)
    return f"<manifest>\n  <process>\n{body}\n  </process>\n</manifest>\n"


OK = ("<id>svc</id>", "<executable>python3</executable>", "<route>/svc/*</route>")

# Each entity ten of the one before, nine deep: 10^9 "a"s if expanded.
LAUGHS = '<!ENTITY a "aaaaaaaaaa">' + "".join(
    f'<!ENTITY {name} "{("&" + before + ";") * 10}">'
    for before, name in zip("abcdefgh", "bcdefghi", strict=True)
)

# (manifest text, [(line, text the message must contain)])
CASES: dict[str, tuple[str | bytes, list[tuple[int | None, str]]]] = {
    "an id that cannot name the pipe it names": (  # said of the id, once
        process("<id>api/v2</id>", "<executable>python3</executable>", "<route>/a/*</route>"),
        [
            (
                3,
                '<process id="api/v2">: <id> "api/v2" names its pipe, which cannot be . or .. '
                "nor hold / or \\: add a <pipe_name>, e.g. api_pipe",
            )
        ],
    ),
    "an id that is a folder's name": (
        process("<id>..</id>", "<executable>python3</executable>", "<route>/a/*</route>"),
        [(3, '<process id="..">: <id> ".." names its pipe, which cannot be . or ..')],
    ),
    "route without slash": (
        process("<id>auth</id>", "<executable>python3</executable>", "<route>api/*</route>"),
        [(5, '<process id="auth">: <route> "api/*" must start with "/": write "/api/*"')],
    ),
    "a route written as a URL": (  # its path is the fix, not "/http://..."
        process(
            "<id>api</id>",
            "<executable>python3</executable>",
            "<route>http://localhost:3000/api/*</route>",
            "<communication_mode>passthrough</communication_mode>",
            "<ready_path>http://127.0.0.1:8000/healthz</ready_path>",
        ),
        [
            (5, '<route> "http://localhost:3000/api/*" is a URL; write its path alone: "/api/*"'),
            (
                7,
                '<ready_path> "http://127.0.0.1:8000/healthz" is a URL; write its path alone: '
                '"/healthz"',
            ),
        ],
    ),
    "the second route wrong": (  # named by its own line and value, not the first route's
        process(
            "<id>auth</id>",
            "<executable>python3</executable>",
            "<route>/ok/*</route>",
            "<route>/a/**</route>",
        ),
        [
            (
                6,
                '<process id="auth">: <route> "/a/**" may only have \'*\' at its end, after a '
                "'/', as in /api/*",
            )
        ],
    ),
    "an origin spelt as no browser sends it": (  # it would never match
        process(*OK, "<cors>http://localhost:5173</cors>", "<cors>http://localhost:5173/</cors>"),
        [
            (
                7,
                '<process id="svc">: <cors> "http://localhost:5173/" is not an origin as browsers '
                'send it: write "http://localhost:5173"',
            )
        ],
    ),
    "a prefix that begins none of the routes": (  # it would never be taken off
        process(
            *OK,
            "<communication_mode>passthrough</communication_mode>",
            "<strip_prefix>/sv</strip_prefix>",
        ),
        [
            (
                7,
                '<process id="svc">: <strip_prefix> "/sv" begins none of its routes (/svc/*), '
                'so nothing would be taken off; write e.g. "/svc"',
            )
        ],
    ),
    "a prefix for an envelope child": (  # which gets the whole uri
        process(*OK, "<strip_prefix>/svc</strip_prefix>"),
        [(6, '<process id="svc">: <strip_prefix> works for passthrough only')],
    ),
    "a variable with no value in <port>": (  # said once, not again as "not an integer"
        process(
            *OK,
            "<communication_mode>passthrough</communication_mode>",
            "<port>${NO_SUCH_PORT}</port>",
        ),
        [(7, '<process id="svc">: <port> "${NO_SUCH_PORT}": ${NO_SUCH_PORT} has no value')],
    ),
    "a process's own variables in a task": (  # it ran, failed unhandled, and hung its needers
        process(*OK).replace(
            "</manifest>",
            "  <task><id>t</id><executable>sh</executable><arg>${PORT}</arg>"
            '<env name="A">${LOCAL_LAMBDAS_ID}:${LOCAL_LAMBDAS_URL}:${PIPE_ADDRESS}</env></task>\n'
            "</manifest>",
        ),
        [
            (
                7,
                '<task id="t">: <arg> "${PORT}": ${PORT} is each process\'s own value, given '
                "as it starts: only a <process>'s <arg> and <env> can name it",
            ),
            (
                7,
                '<task id="t">: <env> "${LOCAL_LAMBDAS_ID}:${LOCAL_LAMBDAS_URL}:${PIPE_ADDRESS}": '
                "${PIPE_ADDRESS} is each process's own value",
            ),
        ],
    ),
    "an instance's value its mode does not give": (  # ("only <arg> and <env>" it was)
        process(
            *OK,
            "<communication_mode>passthrough</communication_mode>",
            "<arg>--bind</arg>",
            "<arg>unix:${PIPE_ADDRESS}</arg>",
        ),
        [
            (
                8,
                '<process id="svc">: <arg> "unix:${PIPE_ADDRESS}": ${PIPE_ADDRESS} is given in '
                "the pipe modes only; this process's <communication_mode>, passthrough, gives "
                "${PORT} and ${HTTP_ADDRESS}, where it listens",
            )
        ],
    ),
    "a port in the default mode": (
        process(*OK, '<env name="URL">http://127.0.0.1:${PORT}</env>'),
        [
            (
                6,
                '<process id="svc">: <env> "http://127.0.0.1:${PORT}": ${PORT} is given in the '
                "http and passthrough modes only; this process's <communication_mode>, pipe "
                "(the default), gives ${PIPE_ADDRESS}, the socket it listens on",
            )
        ],
    ),
    "an env name with =": (
        process(*OK, '<env name="A=B">v</env>'),
        [(6, '<process id="svc">: <env> name "A=B" cannot hold "=" or a NUL')],
    ),
    "instances on one fixed port": (  # all but the first would fail: address in use
        process(
            *OK,
            "<communication_mode>passthrough</communication_mode>",
            "<port>5055</port>",
            "<instances>2</instances>",
        ),
        [
            (
                8,
                '<process id="svc">: <instances> 2 with <port> 5055: every instance would listen '
                "on that one port",
            )
        ],
    ),
    # A word typed between elements: it was libxml2's "schema: Element 'manifest': Character
    # content other than whitespace is not allowed because the content type is ...".
    "text outside the elements": (
        process(*OK[:2], "x", OK[2])
        .replace("</manifest>", "stray words\n</manifest>")
        .replace("<process>", "<process>\n    <!-- a comment -->\n    lead", 1),
        [
            (
                4,
                '<process> holds text outside its elements, "lead": remove it, or make it a '
                "comment, <!-- like this -->",
            ),
            (7, '<process> holds text outside its elements, "x"'),
            (10, '<manifest> holds text outside its elements, "stray words"'),
        ],
    ),
    "misspelt element": (
        process(*OK, "<rout>/x</rout>"),
        [(6, "unknown element <rout>; did you mean <route>?")],
    ),
    # Other runners' names: <name> was told <pipe_name>, <cwd> the list of every element.
    "another runner's elements": (
        process(
            "<name>svc</name>",
            "<command>node server.js --port ${PORT}</command>",
            "<route>/x/*</route>",
            "<cwd>api</cwd>",
            "<environment>DEBUG=1 MODE=dev</environment>",
        ),
        [
            (3, "unknown element <name>; here that is <id>"),
            (
                4,
                "unknown element <command>; here that is <executable>: <executable>node"
                "</executable><arg>server.js</arg><arg>--port</arg><arg>${PORT}</arg>",
            ),
            (6, "unknown element <cwd>; here that is <working_dir>"),
            (
                7,
                'unknown element <environment>; here that is <env>: <env name="DEBUG">1</env>'
                '<env name="MODE">dev</env>',
            ),
        ],
    ),
    "misspelt process": (
        "<manifest>\n  <proccess/>\n</manifest>",
        [(2, "unknown element <proccess>; did you mean <process>?")],
    ),
    "missing route and id": (
        process("<executable>python3</executable>"),
        [(2, "missing <id>"), (2, "missing <route>")],
    ),
    "required elements written empty": (  # an editor's <executable/>: it ran "" for ever
        process("<id/>", "<executable> </executable>", "<route></route>").replace(
            "</manifest>", "  <task><id>t</id><executable/></task>\n</manifest>"
        ),
        [
            (3, "<process>: <id> is empty; write e.g. <id>api-service</id>"),
            (4, "<process>: <executable> is empty; write e.g. <executable>python3</executable>"),
            (5, "<process>: <route> is empty; write e.g. <route>/api/*</route>"),
            (7, '<task id="t">: <executable> is empty; write e.g. <executable>python3'),
        ],
    ),
    "an empty route beside another, and an empty path": (
        process(
            *OK,
            "<route/>",
            "<communication_mode>passthrough</communication_mode>",
            "<strip_prefix></strip_prefix>",
        ),
        [
            (6, '<route> "" is empty: remove it, or write a path such as /api/*'),
            (8, '<strip_prefix> "" is empty: remove it, or write a path such as /api'),
        ],
    ),
    "a path element taken for a switch": (  # as other proxies' strip-prefix options read
        process(
            *OK,
            "<communication_mode>passthrough</communication_mode>",
            "<strip_prefix>true</strip_prefix>",
            "<ready_path>Yes</ready_path>",
        ),
        [
            (
                7,
                '<strip_prefix> "true" is not a switch: write the prefix to take off the '
                "path, such as /api for the route /api/*",
            ),
            (8, '<ready_path> "Yes" is not a switch: write the path to ask, such as /health'),
        ],
    ),
    "a route in mode none": (  # nothing is routed to a worker: its routes would 503 for ever
        process(*OK, "<communication_mode>none</communication_mode>", "<timeout>5s</timeout>"),
        [
            (
                5,
                '<process id="svc">: <route> is for a process requests go to, and none go to '
                "one whose <communication_mode> is none; remove it",
            ),
            (7, '<process id="svc">: <timeout> is for a process requests go to'),
        ],
    ),
    "a port or ready path on a pipe child": (  # it listens on a socket: they do nothing
        process(*OK, "<port>5055</port>", "<ready_path>/healthz</ready_path>"),
        [
            (
                6,
                '<process id="svc">: <port> is for the HTTP modes (http, passthrough): a pipe '
                "child listens on its socket ($PIPE_ADDRESS) and is ready once it does; remove "
                "<port>, or choose the mode it serves by",
            ),
            (7, '<process id="svc">: <ready_path> is for the HTTP modes (http, passthrough)'),
        ],
    ),
    "what a started process holds, on a route-only one": (  # nothing is started
        process(
            "<id>svc</id>",
            "<upstream>http://127.0.0.1:8081</upstream>",
            "<route>/svc/*</route>",
            "<instances>2</instances>",
            "<build>make</build>",
            "<concurrency>4</concurrency>",
        ),
        [
            (
                6,
                '<process id="svc">: <instances> is for a process local-lambdas starts, and a '
                "route-only one (<upstream>) starts nothing: remove it",
            ),
            (7, '<process id="svc">: <build> is for a process local-lambdas starts'),
        ],
    ),
    "missing route, a worker's way told": (
        process("<id>w</id>", "<executable>python3</executable>"),
        [
            (
                2,
                "missing <route>; add one, e.g. <route>/api/*</route> (or, if nothing is "
                "routed to it, <communication_mode>none</communication_mode>)",
            )
        ],
    ),
    "bad mode": (
        process(*OK, "<communication_mode>pipes</communication_mode>"),
        [(6, "<communication_mode> \"pipes\" must be one of: 'pipe', 'pipe-keepalive', 'http'")],
    ),
    "mode mistyped": (
        process(*OK, "<communication_mode>passthru</communication_mode>"),
        [(6, "'passthrough', 'none'; did you mean 'passthrough'?")],
    ),
    # A web server's scheme was told "did you mean 'http'?", the JSON envelope.
    "mode named for what the child serves": (
        process(*OK, "<communication_mode>https</communication_mode>"),
        [
            (
                6,
                "'none'; for that, 'passthrough': children speak plain HTTP; the proxy serves "
                "HTTPS itself (--tls)",
            )
        ],
    ),
    "mode named for the socket": (
        process(*OK, "<communication_mode>unix</communication_mode>"),
        [(6, "'none'; for that, 'pipe': the child listens on a named pipe (a Unix socket)")],
    ),
    "docker compose's restart policy": (
        process(*OK, "<restart>unless-stopped</restart>"),
        [
            (
                6,
                "'never'; for that, 'always': it starts again whenever it exits, until "
                "local-lambdas stops",
            )
        ],
    ),
    # It was pydantic's "should be a valid integer, unable to parse string as an integer".
    "a count that is no whole number": (
        process(*OK, "<instances>2.5</instances>"),
        [(6, '<process id="svc">: <instances> "2.5" should be a whole number')],
    ),
    "mode in capitals": (
        process(*OK, "<communication_mode>HTTP</communication_mode>"),
        [(6, "'passthrough', 'none'; did you mean 'http'?")],
    ),
    "no such mode, and a variable a mode gives": (  # the mode alone is said
        process(*OK, "<communication_mode>HTTP</communication_mode>", "<arg>${PIPE_ADDRESS}</arg>"),
        [(6, "'passthrough', 'none'; did you mean 'http'?")],
    ),
    "mode unlike any": (
        process(*OK, "<communication_mode>grpc</communication_mode>"),
        [
            (
                6,
                "<communication_mode> \"grpc\" must be one of: 'pipe', 'pipe-keepalive', 'http', "
                "'passthrough'",
            )
        ],
    ),
    "bad timeout": (
        process(*OK, "<timeout>soon</timeout>"),
        [(6, '<timeout> "soon" is not a duration; write e.g. 30s')],
    ),
    "star in the middle": (
        process("<id>a</id>", "<executable>python3</executable>", "<route>/a/*/b</route>"),
        [(5, "may only have '*' at its end")],
    ),
    "a route above the root": (
        process("<id>a</id>", "<executable>python3</executable>", "<route>/../a/*</route>"),
        [(5, '<route> "/../a/*" can match no request: the path climbs above /')],
    ),
    "a route with an encoded slash": (  # a request's %2F is refused: it would match none
        process("<id>a</id>", "<executable>python3</executable>", "<route>/a%2Fb/*</route>"),
        [(5, "holds an encoded slash (%2F): write the path with /")],
    ),
    "a route with a query": (
        process("<id>a</id>", "<executable>python3</executable>", "<route>/a?x=1</route>"),
        [(5, "must be a path only: routes never match the query string")],
    ),
    "a route with a fragment": (
        process("<id>a</id>", "<executable>python3</executable>", "<route>/a#b/*</route>"),
        [(5, "must be a path only: a '#' starts a fragment, which no request sends")],
    ),
    "a route inside the admin prefix, spelt otherwise": (
        process("<id>a</id>", "<executable>python3</executable>", "<route>/%5F/x/*</route>"),
        [(5, '<route> "/%5F/x/*" is inside /_/, where the proxy\'s own endpoints are')],
    ),
    "executable not on PATH": (
        process("<id>a</id>", "<executable>pyhton3</executable>", "<route>/a</route>"),
        [(4, '<executable> "pyhton3" not found on PATH')],
    ),
    "a command line as the executable": (
        process(
            "<id>a</id>", "<executable>sh run.sh --name 'a b'</executable>", "<route>/a</route>"
        ),
        [
            (
                4,
                "<executable> \"sh run.sh --name 'a b'\" is a command line: <executable> names the "
                "program alone, and each argument goes in an <arg> of its own: <executable>sh"
                "</executable><arg>run.sh</arg><arg>--name</arg><arg>a b</arg>",
            )
        ],
    ),
    "twice the same element": (
        process(*OK, "<pipe_name>a</pipe_name>", "<pipe_name>b</pipe_name>"),
        [(7, "<pipe_name> appears again (first on line 6); keep one")],
    ),
    "unknown attribute": (
        '<manifest>\n  <process name="x">\n' + "\n".join(OK) + "\n  </process>\n</manifest>",
        [(2, 'unknown attribute name="..."')],
    ),
    "not xml": (
        "<manifest>\n  <process>\n</manifest>",
        [(3, "not well-formed XML")],
    ),
    "not a manifest at all": (  # a script, package.json or a YAML file passed by mistake
        "\ufeff\nprocesses:\n  - id: api\n",
        [(None, 'is not a manifest: it starts with "processes:", and a manifest is XML whose')],
    ),
    "a NUL byte": (
        "<manifest>\n  <process>\x00</process>\n</manifest>",
        [(2, "not well-formed XML: Invalid character: Char 0x0 out of allowed range; fix")],
    ),
    "a line break in a value": (
        process("<id>svc</id>", "<executable>p&#10;ython3</executable>", "<route>/svc/*</route>"),
        [(4, "not found on PATH")],
    ),
    "saved as Latin-1, read as UTF-8": (  # an editor's legacy encoding: say which way out
        "<manifest>\n  <process><id>caf\u00e9</id></process>\n</manifest>".encode("latin-1"),
        [(2, "encoding; the file is not UTF-8: save it as UTF-8, or declare its encoding in")],
    ),
    "saved as Latin-1, declared UTF-8": (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<manifest><process><id>caf\xe9</id>',
        [(2, "the file is not the UTF-8 its first line declares; save it as UTF-8, or")],
    ),
    "an encoding declared by a name XML parsers do not know": (
        b'<?xml version="1.0" encoding="latin-1"?>\n<manifest><process><id>caf\xe9</id>',
        [(1, "Unsupported encoding: latin-1; declare it by a name XML parsers know, as enco")],
    ),
    # (As an editor or `iconv -t UTF-16LE` saves it: with its BOM it is read.)
    "saved as UTF-16 without its byte-order mark": (
        "<manifest>\n  <process>".encode("utf-16-le"),
        [(1, "Char 0x0 out of allowed range; the file is UTF-16 without a byte-order mark")],
    ),
    "saved as UTF-16, big-endian, without its byte-order mark": (
        "<manifest>\n  <process>".encode("utf-16-be"),
        [(1, "Document is empty; the file is UTF-16 without a byte-order mark, which XML")],
    ),
    "wrong root": (
        "<processes/>",
        [(1, "the root element is <processes>; it must be <manifest>")],
    ),
    "env without name": (
        process(*OK, "<env>1</env>"),
        [(6, '<env> needs a name, as in <env name="DEBUG">1</env>')],
    ),
    "env as compose writes it": (
        process(*OK, "<env>API_URL=http://127.0.0.1:9000/?a=b</env>"),
        [(6, '<env> needs a name, as in <env name="API_URL">http://127.0.0.1:9000/?a=b</env>')],
    ),
    "bad port": (
        process(*OK, "<communication_mode>http</communication_mode>", "<port>70000</port>"),
        [(7, '<port> "70000" should be less than or equal to 65535')],
    ),
    "working_dir missing": (
        process(*OK, "<working_dir>nowhere</working_dir>"),
        [(6, "is not a directory")],
    ),
    "a shell's $HOME in a path": (  # no shell reads a path: ${HOME} is the variable's value
        process(
            *OK,
            "<working_dir>$HOME/nowhere</working_dir>",
            "<env_file>$HOME/nowhere.env</env_file>",
        ),
        [
            (6, "); $HOME is not expanded here: write ${HOME}"),  # after "is not a directory"
            (
                7,
                "No such file or directory; create it or fix the path; $HOME is not expanded "
                "here: write ${HOME}",
            ),
        ],
    ),
    "cache on pass-through": (
        process(*OK, "<communication_mode>passthrough</communication_mode>", "<cache>1MiB</cache>"),
        [(7, "<cache> works for the envelope modes only")],
    ),
    "a commented-out argument": (
        "<manifest>\n  <!-- <arg>--port</arg> -->\n</manifest>",
        [(2, "a commented-out <arg>--port</arg> does")],
    ),
    "an entity of a DTD": (  # never expanded: no file is read, no repr of lxml's shown
        '<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/hostname">]>\n<manifest>\n'
        "  <process><id>&x;</id></process>\n</manifest>",
        [(3, "&x;: a manifest expands no entities of its own")],
    ),
    "entities a billion laughs long": (  # libxml2 refuses to blow up; one line says so
        "<!DOCTYPE m [" + LAUGHS + "]>\n<manifest>&i;</manifest>",
        [(1, "not well-formed XML: Maximum entity amplification factor exceeded")],
    ),
}


def _problems_of_executables(folder: Path, files: dict[str, bytes]) -> list[str]:
    """The load's problems with a manifest of one process for each of `files`, written into
    `folder` as executables (name: content), each its own <executable>."""
    for name, text in files.items():
        (folder / name).write_bytes(text)
        (folder / name).chmod(0o755)
    with pytest.raises(ManifestError) as caught:
        load(folder, "<manifest>" + "".join(
            f"<process><id>{name.replace('.', '-')}</id><executable>./{name}</executable>"
            f"<route>/{name}/*</route></process>" for name in files
        ) + "</manifest>")  # fmt: skip
    return [p.message for p in caught.value.problems]


def test_a_value_with_an_invisible_character_pasted_in_shows_it(tmp_path: Path) -> None:
    """A zero-width space or a no-break space copied with a value from a web page, a byte
    order mark before an id: the value quoted in the problem looked like the right one
    ("/api/*" may only have '*' at its end). Each is written as an escape, and a no-break
    space in a duration is said as such rather than by the schema's pattern."""
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, "<manifest><process><id>\ufeffa</id><executable>python3</executable>"
             "<route>/api/*\u200b</route><timeout>5\u00a0s</timeout><communication_mode>"
             "pipe\u2060</communication_mode></process></manifest>")  # fmt: skip
    said = [str(problem).partition(": ")[2] for problem in caught.value.problems]
    assert said == [
        '<process id="\\ufeffa">: <id> "\\ufeffa" must be a name without spaces, e.g. api-service',
        '<process id="\\ufeffa">: <route> "/api/*\\u200b" may only have \'*\' at its end, after '
        "a '/', as in /api/*",
        '<process id="\\ufeffa">: <communication_mode> "pipe\\u2060" must be one of: \'pipe\', '
        "'pipe-keepalive', 'http', 'passthrough', 'none'; did you mean 'pipe'?",
        '<process id="\\ufeffa">: <timeout> "5\\xa0s" is not a duration; write e.g. 30s, 500ms '
        "or 2m",
    ], said


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's limits on a program's arguments")
def test_arguments_the_system_would_refuse_for_their_size_are_said_at_load(
    tmp_path: Path,
) -> None:
    """An <arg> or <env> over 128 KiB, or all of a process's over ARG_MAX, which the kernel
    refuses at every start (E2BIG): `check` passed such a manifest, and each start failed
    with "Argument list too long" until the process went FATAL. Said at load: which value,
    how large, the limit and the fix."""
    limit = os.sysconf("SC_ARG_MAX")
    if limit > 16 * 2**20:
        pytest.skip(f"ARG_MAX is {limit:,} here (an unlimited stack): too much to fill")
    big, part = "x" * 200_000, "y" * 120_000
    many = "".join(f'<env name="E{n}">{part}</env>' for n in range(limit // 120_000 + 1))
    worker = "<executable>python3</executable><communication_mode>none</communication_mode>"
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, f"""<manifest>
            <process><id>arg</id>{worker}<arg>-c</arg><arg>pass # {big}</arg></process>
            <process><id>env</id>{worker}<env name="A">1</env><env name="B">{big}</env></process>
            <process><id>all</id>{worker}{many}</process>
            <process><id>fits</id>{worker}<arg>{part}</arg><env name="C">{part}</env></process>
        </manifest>""")  # fmt: skip
    fix = "Linux takes at most 131,071 in one; write it to a file and pass the file's name"
    said = [(p.line, p.message) for p in caught.value.problems]
    assert said[:2] == [
        (2, f'<process id="arg">: <arg> 2 is 200,007 bytes, and {fix}'),
        (3, f'<process id="env">: the variable B is 200,002 bytes, and {fix}'),
    ], said
    assert len(said) == 3 and said[2][0] == 4, said
    assert said[2][1].startswith('<process id="all">: the arguments and environment come to ')
    assert said[2][1].endswith(
        f" bytes, and the system takes at most {limit:,} in all (getconf ARG_MAX); write the "
        "largest to files and pass their names"
    ), said[2]


def test_a_start_refused_for_its_size_says_which_value() -> None:
    """What the load could not see (a value made by a variable), said when the start fails."""
    refused = OSError(errno.E2BIG, "Argument list too long")
    said = executables.not_started(Path.cwd(), None, refused, ["-c"], {"BIG": "z" * 200_000})
    if sys.platform.startswith("linux"):
        assert said == (
            "Argument list too long: the variable BIG is 200,004 bytes, and Linux takes at "
            "most 131,071 in one; write it to a file and pass the file's name"
        )
    else:
        assert said.startswith("Argument list too long")


@pytest.mark.skipif(sys.platform == "win32", reason="no #! lines on Windows")
def test_a_script_whose_first_line_cannot_run_it_is_named(tmp_path: Path) -> None:
    """The kernel says only "No such file or directory" of a script that is there: a #!
    line ending in CR (saved with Windows line endings) or naming an interpreter that is
    not there is said at load, with the fix, and so is a program `#!/usr/bin/env` would not
    find on the child's PATH (env says it only as the child exits 127); so is a Python
    script with no #! line, which the shell would run and fail on with a syntax error, and
    one whose #! line follows a byte order mark, which the kernel does not see."""
    scripts = {"crlf.sh": b"#!/bin/sh\r\necho hi\r\n", "gone.py": b"#!/opt/no/python9 -u\n",
               "ok.sh": b"#!/bin/sh\necho hi\n", "env.py": b"#!/usr/bin/env python3\n",
               "plain.sh": b"echo hi\n", "bare.py": b"print('hi')\n",
               "elf.py": b"\x7fELF\x02\x01", "nowhere.py": b"#!/usr/bin/env python9\n",
               "envs.py": b"#!/usr/bin/env -S PYTHONUNBUFFERED=1 python3 -u\n",
               "envs-gone.js": b"#!/usr/bin/env -S X=1 nodejs9 --flag\n",
               "envi.py": b"#!/usr/bin/env -i python9\n",
               "bom.py": b"\xef\xbb\xbf#!/usr/bin/env python3\nprint('hi')\n"}  # fmt: skip
    assert _problems_of_executables(tmp_path, scripts) == [
        '<process id="crlf-sh">: <executable> "./crlf.sh" has Windows line endings: its first '
        'line, "#!/bin/sh\\r", names an interpreter whose name ends in a CR; convert the file '
        f"to LF endings (dos2unix {tmp_path / 'crlf.sh'})",
        '<process id="gone-py">: <executable> "./gone.py" starts with "#!/opt/no/python9 -u", '
        "and /opt/no/python9 is not there; fix that line (#!/usr/bin/env python3, say)",
        '<process id="bare-py">: <executable> "./bare.py" has no "#!" line, so it would run '
        'as a shell script; make its first line "#!/usr/bin/env python3", or name python3 in '
        "<executable> and the script in <arg>",
        '<process id="nowhere-py">: <executable> "./nowhere.py" starts with "#!/usr/bin/env '
        'python9", and python9 is not found on its PATH; install it, put its folder on PATH '
        "(<env>), or fix that line",
        '<process id="envs-gone-js">: <executable> "./envs-gone.js" starts with "#!/usr/bin/env '
        '-S X=1 nodejs9 --flag", and nodejs9 is not found on its PATH; install it, put its '
        "folder on PATH (<env>), or fix that line",
        '<process id="bom-py">: <executable> "./bom.py" begins with a byte order mark before '
        'its "#!" line (saved as UTF-8 with BOM), so the system does not read that line and '
        "would run it as a shell script; save it as UTF-8 without the BOM "
        f"(sed -i '1s/^\\xEF\\xBB\\xBF//' {tmp_path / 'bom.py'})",
    ]  # (env -i and its like are not judged)


@pytest.mark.skipif(sys.platform != "linux", reason="ELF programs are Linux's")
def test_a_program_for_another_system_or_processor_is_named(tmp_path: Path) -> None:
    """A program this machine cannot run, which the kernel refuses and uvloop's exec then
    hands to the shell ("ELF: not found", exit 127): a build for another processor, for
    macOS, for Windows, said at load with what to do. One for this machine is not, nor
    x86's 32-bit programs, which x86-64 runs."""
    with open(sys.executable, "rb") as python:
        ours = python.read(20)
    programs = {"riscv": elf_program(243), "mac": b"\xcf\xfa\xed\xfe\x07\x00\x00\x01",
                "app.exe": b"MZ\x90\x00\x03", "native": ours + bytes(64),
                "i386": elf_program(3)}  # fmt: skip
    said = _problems_of_executables(tmp_path, programs)
    assert len(said) == 3, said
    assert said[0].startswith(
        '<process id="riscv">: <executable> "./riscv" is a program for RISC-V processors, '
        "and this machine's are "
    ), said[0]
    assert said[1:] == [
        '<process id="mac">: <executable> "./mac" is a macOS program (Mach-O); build or '
        "download it for Linux",
        '<process id="app-exe">: <executable> "./app.exe" is a Windows program; build or '
        "download it for Linux, or run it with Wine (<executable>wine</executable>, it in an "
        "<arg>)",
    ]


def test_one_pass_reports_every_problem_once_per_cause(tmp_path: Path) -> None:
    """A process with a misspelt element, a bad value, a missing working directory and an
    executable that is not there: all four, and no "missing <route>" beside "<rout>"."""
    text = dedent("""
        <manifest>
          <process>
            <id>a</id>
            <executable>./not-there</executable>
            <rout>/a/*</rout>
            <timeout>soon</timeout>
          </process>
          <process>
            <id>b</id>
            <executable>pyhton3</executable>
            <route>/b/*</route>
            <working_dir>nowhere</working_dir>
          </process>
        </manifest>
    """)
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, text)
    messages = [(p.line, p.message) for p in caught.value.problems]
    assert [line for line, _ in messages] == [4, 5, 6, 10, 12], messages
    assert f"does not exist: there is no {tmp_path / 'not-there'}" in messages[0][1]
    assert "did you mean <route>?" in messages[1][1]
    assert "is not a duration" in messages[2][1]
    assert '"pyhton3" not found on PATH' in messages[3][1]
    assert "is not a directory" in messages[4][1]
    assert not any("missing <route>" in m for _, m in messages)


@pytest.mark.skipif(IS_WINDOWS, reason="the execute bit is POSIX's")
def test_an_executable_path_that_cannot_run_says_why(tmp_path: Path) -> None:
    (tmp_path / "tool.sh").write_text("#!/bin/sh\necho hi\n")  # no execute bit
    (tmp_path / "bin").mkdir()
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, "<manifest>" + "".join(
            f"<process><id>p{n}</id><executable>{exe}</executable><route>/p{n}/*</route>"
            "</process>" for n, exe in enumerate(["./tool.sh", "./bin", "./gone"])
        ) + "</manifest>")  # fmt: skip
    assert [p.message.partition("> ")[2] for p in caught.value.problems] == [
        f'"./tool.sh" is not executable; chmod +x {tmp_path / "tool.sh"}, or name its '
        "interpreter in <executable> and the script in <arg>",
        '"./bin" is a directory; name the program inside it',
        f'"./gone" does not exist: there is no {tmp_path / "gone"}; check the path',
    ]


def test_paths_the_system_cannot_look_at_are_said_not_raised(tmp_path: Path) -> None:
    """A <working_dir>, <executable> or <env_file> in a folder this user may not enter
    (another user's home: "Permission denied"), or with a name too long: the system's
    reason, not a traceback. (As root, only the long name can be had.)"""
    long = "x" * 300  # over the 255 bytes a file name may have
    too_long = os.strerror(errno.ENAMETOOLONG)
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, "<manifest>"
             "<process><id>a</id><executable>python3</executable><route>/a/*</route>"
             f"<working_dir>{long}</working_dir><env_file>{long}.env</env_file></process>"
             f"<process><id>b</id><executable>./{long}</executable><route>/b/*</route>"
             f"<arg>{long}/app.py</arg></process></manifest>")  # fmt: skip
    assert [p.message.partition("> ")[2] for p in caught.value.problems] == [
        f"{tmp_path / long}.env: {too_long}; create it or fix the path",
        f'"{tmp_path / long}" cannot be used: {too_long}',
        f'"./{long}" cannot be used: {too_long}',
    ]


def test_an_executable_its_build_makes_may_be_missing_at_load(tmp_path: Path) -> None:
    """A fresh checkout of a compiled child (`go build -o server .`): ./server is the
    build's (or a task's) to make; without either, or named bare (looked for on PATH), it
    is missing."""

    def process(n: int, exe: str, build: str) -> str:
        return (f"<process><id>p{n}</id><executable>{exe}</executable><route>/p{n}/*</route>"
                f"{build}</process>")  # fmt: skip

    build = "<build>cc -o server server.c</build>"
    loaded = load(tmp_path, f"<manifest>{process(0, './server', build)}</manifest>")
    assert loaded.processes[0].build == "cc -o server server.c"
    # Likewise one a <task> it depends on makes.
    task = "<task><id>make</id><executable>sh</executable></task>"
    needs = "<depends_on>make</depends_on>"
    loaded = load(tmp_path, f"<manifest>{process(0, './bin/server', needs)}{task}</manifest>")
    assert loaded.processes[0].depends_on == ("make",)
    # A file it names in an <arg> is still warned of, saying what may make it.
    args = "<arg>dist/server.js</arg>"
    loaded = load(tmp_path, f"<manifest>{process(3, 'sh', args + build)}</manifest>")
    assert [warning.rpartition("; ")[2] for warning in loaded.warnings] == [
        "relative paths start at the child's working directory, unless its <build> makes it"
    ]
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, "<manifest>" + process(1, "./server", "") + process(2, "server", build)
             + "</manifest>")  # fmt: skip
    assert [p.message.partition("> ")[2] for p in caught.value.problems] == [
        f'"./server" does not exist: there is no {tmp_path / "server"}; check the path',
        '"server" not found on PATH; install it or give its full path',
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="the tools are sh scripts")
def test_a_bare_executable_its_project_installed_for_itself_is_named(tmp_path: Path) -> None:
    """`uvicorn` in the project's .venv, `vite` in node_modules/.bin: on the PATH of the
    shell the developer works in (the venv activated, `npm run`), not on the proxy's. The
    problem names the one found and the two ways to give it."""
    app = tmp_path / "web" / "app"
    for tool in (app / ".venv" / "bin" / "serve-it", tmp_path / "web/node_modules/.bin/vite"):
        tool.parent.mkdir(parents=True, exist_ok=True)
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    (app / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")

    def process(n: int, exe: str) -> str:
        return (f"<process><id>p{n}</id><executable>{exe}</executable><route>/p{n}/*</route>"
                "<working_dir>web/app</working_dir></process>")  # fmt: skip

    with pytest.raises(ManifestError) as caught:
        load(tmp_path, f"<manifest>{process(1, 'serve-it')}{process(2, 'vite')}</manifest>")
    venv, modules = app / ".venv" / "bin", tmp_path / "web" / "node_modules" / ".bin"
    assert [p.message.partition("> ")[2] for p in caught.value.problems] == [
        f'"serve-it" not found on PATH; its project has one, {venv / "serve-it"}: give '
        f'<executable>{venv / "serve-it"}</executable>, or <env name="PATH">.venv/bin:${{PATH}}'
        "</env>",
        f'"vite" not found on PATH; its project has one, {modules / "vite"}: give '
        f'<executable>{modules / "vite"}</executable>, or <env name="PATH">{modules}:${{PATH}}'
        "</env>",
    ]


def test_values_on_lines_of_their_own_are_read_without_their_blanks(tmp_path: Path) -> None:
    """A manifest an editor or a formatter laid out, each value on a line of its own: the
    blanks around a value are no part of it, for the words the schema lists too."""
    values = {"communication_mode": "pipe-keepalive", "restart": "on-failure",
              "start": "on-request", "watch": "off", "timeout": "5s"}  # fmt: skip
    laid_out = "".join(f"<{k}>\n      {v}\n    </{k}>\n" for k, v in values.items())
    text = "<manifest><process>" + "".join(OK) + laid_out + "</process></manifest>"
    (process,) = load(tmp_path, text).processes
    assert process.communication_mode.value == "pipe-keepalive"
    assert (process.restart.value, process.start, process.timeout) == (
        "on-failure", "on-request", 5.0
    )  # fmt: skip


def test_editor_schema_hints_are_accepted(tmp_path: Path) -> None:
    text = (
        '<manifest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xsi:noNamespaceSchemaLocation="manifest.xsd">\n  <process>\n'
        + "\n".join(OK)
        + "\n  </process>\n</manifest>\n"
    )
    assert [p.id for p in load(tmp_path, text).processes] == ["svc"]


@pytest.mark.parametrize(
    ("root", "tag"),
    [("manifest xmlns='urn:example:services'", ""), ("m:manifest xmlns:m='urn:m'", "m:")],
)
def test_a_manifest_in_a_namespace_is_read_by_its_elements_names(
    tmp_path: Path, root: str, tag: str
) -> None:
    """The earlier tool matched elements by their local names: a namespace declared for an
    editor's schema changes nothing; an element of another namespace is still unknown."""
    body = "\n".join(line.replace("<", f"<{tag}").replace(f"<{tag}/", f"</{tag}") for line in OK)
    text = f"<{root}>\n  <{tag}process>\n{body}\n  </{tag}process>\n</{tag}manifest>\n"
    manifest = load(tmp_path, text)
    assert [(p.id, p.routes) for p in manifest.processes] == [("svc", ("/svc/*",))]
    stray = text.replace(
        f"</{tag}process>", "<x:port xmlns:x='urn:x'>1</x:port></" + tag + "process>"
    )
    with pytest.raises(ManifestError, match='<x:port> is of namespace "urn:x", not the'):
        load(tmp_path, stray)


def test_a_pipe_name_on_an_http_mode_is_warned_of_not_refused(tmp_path: Path) -> None:
    """It named nothing and was taken in silence; refused, it would break a manifest of the
    earlier tool's that names one for any mode. Two such alike are no clash either."""
    text = process(*OK, "<pipe_name>svc_pipe</pipe_name>",
                   "<communication_mode>passthrough</communication_mode>").replace(
        "</manifest>",
        "<process><id>b</id><executable>python3</executable><route>/b/*</route><pipe_name>"
        "svc_pipe</pipe_name><communication_mode>http</communication_mode></process></manifest>",
    )  # fmt: skip
    loaded = load(tmp_path, text)
    assert [w.split(": ", 1)[1] for w in loaded.warnings] == [
        '<process id="svc">: <pipe_name> names a pipe mode\'s socket; in mode passthrough the '
        "child listens on TCP ($PORT) and no pipe is made: remove it, or choose a pipe mode",
        '<process id="b">: <pipe_name> names a pipe mode\'s socket; in mode http the child '
        "listens on TCP ($PORT) and no pipe is made: remove it, or choose a pipe mode",
    ]
    assert loaded.warnings[0].split(": ")[0].endswith(":6")  # its line
    assert load(tmp_path, process(*OK, "<pipe_name>p</pipe_name>")).warnings == ()


def test_check_warns_of_an_argument_naming_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("")
    text = process(*OK, "<arg>app/main.py</arg>", "<arg>app/mian.py</arg>", "<arg>--debug</arg>",
                   "<arg>-c</arg>", "<arg>exec node app/server.js</arg>",  # code, not a file
                   "<arg>app/*.js</arg>", "<arg>EXEC:./handler.sh</arg>",
                   "<arg>node x.js &gt;/dev/null 2&gt;&amp;1 &amp;</arg>")  # fmt: skip
    loaded = load(tmp_path, text)
    assert len(loaded.warnings) == 1, loaded.warnings
    assert '<arg> "app/mian.py" looks like a file, but there is none' in loaded.warnings[0]
    assert "beside the manifest" not in loaded.warnings[0]
    # Started elsewhere than the manifest's folder, where the file is: the warning says so.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = tmp_path / "manifest.xml"
    path.write_text(process(*OK, "<arg>app/main.py</arg>"))
    warned = manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=elsewhere).warnings
    assert len(warned) == 1 and warned[0].endswith(
        f"it is beside the manifest, at {tmp_path / 'app' / 'main.py'}: start local-lambdas "
        f"in {tmp_path}, or give the process <working_dir>{tmp_path}</working_dir>"
    ), warned
    # And an <executable> given as a path, which is a problem rather than a warning.
    (tmp_path / "serve.sh").write_text("#!/bin/sh\n")
    (tmp_path / "serve.sh").chmod(0o755)
    path.write_text(process(*[line for line in OK if "<executable>" not in line],
                            "<executable>./serve.sh</executable>"))  # fmt: skip
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=elsewhere)
    assert f"it is beside the manifest, at {tmp_path / 'serve.sh'}" in str(caught.value)
    # And a <working_dir>, relative to where local-lambdas started, found beside it instead.
    path.write_text(process(*OK, "<working_dir>app</working_dir>"))
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=elsewhere)
    assert (
        f'<working_dir> "{elsewhere / "app"}" is not a directory; create it or fix the path '
        f"(relative paths start at the directory local-lambdas was started in, {elsewhere}); "
        f"it is beside the manifest, at {tmp_path / 'app'}: start local-lambdas in {tmp_path}"
    ) in str(caught.value)


@pytest.mark.skipif(IS_WINDOWS, reason="such a path is Windows' own there")
@pytest.mark.parametrize(("element", "says"), [
    ("<working_dir>.\\services\\api</working_dir><executable>python3</executable>",
     '"\\" divides folders on Windows only: write "/", read there too ({tmp}/./services/api)'),
    ("<executable>.\\server.exe</executable>",
     '"\\" divides folders on Windows only: write "/", read there too (./server.exe)'),
    ("<executable>C:\\Python311\\python.exe</executable>",
     "not found on PATH; install it or give its full path; that is a Windows path (a drive "
     "letter): give one of this system"),
    ("<working_dir>C:\\srv</working_dir><executable>python3</executable>",
     "that is a Windows path (a drive letter): give one of this system"),
])  # fmt: skip
def test_a_path_written_as_windows_writes_it_says_so(
    tmp_path: Path, element: str, says: str
) -> None:
    """A manifest from a Windows machine: `\\` in a path, or a drive letter, is named as such
    with the way to write it, not only "not found"."""
    path = tmp_path / "manifest.xml"
    path.write_text(
        f"<manifest><process><id>p</id>{element}<route>/p/*</route></process></manifest>"
    )
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path)
    assert str(caught.value.problems[0]).endswith(says.format(tmp=tmp_path))


def test_check_warns_of_a_shell_variable_no_shell_expands(tmp_path: Path) -> None:
    """`$PORT` (a Procfile's spelling) reaches the child as written: said at load, with the
    fix; a `$word` that names nothing, `$$` and `${NAME}` are not, nor a shell's -c line."""
    mode = "<communication_mode>passthrough</communication_mode>"
    text = process(*OK, mode, "<arg>127.0.0.1:$PORT</arg>", "<arg>pa$sword$$PORT${PORT}</arg>",
                   '<env name="HOME_TOO">$HOME/x</env>')  # fmt: skip
    loaded = load(tmp_path, text)
    assert [w.split(": ", 2)[2] for w in loaded.warnings] == [
        '<arg> "127.0.0.1:$PORT" passes "$PORT" as written (no shell expands it here); '
        "write ${PORT} for its value",
        '<env> "$HOME/x" passes "$HOME" as written (no shell expands it here); '
        "write ${HOME} for its value",
    ]
    assert loaded.warnings[0].split(": ")[0].endswith(":7")  # the <arg>'s line
    shell = ("<id>svc</id>", "<executable>/bin/sh</executable>", "<route>/svc/*</route>", mode,
             "<arg>-c</arg>", "<arg>exec python3 -m http.server $PORT</arg>")  # fmt: skip
    assert load(tmp_path, process(*shell)).warnings == ()


@pytest.mark.parametrize("name", CASES)
def test_problems_name_the_line_and_the_fix(tmp_path: Path, name: str) -> None:
    text, expected = CASES[name]
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, text)
    found = [(p.line, p.message) for p in caught.value.problems]
    for line, fragment in expected:
        assert any(line == got_line and fragment in msg for got_line, msg in found), found
    assert len(found) == len(expected), found  # each cause said once
    assert all(str(p).startswith(f"{tmp_path / 'manifest.xml'}:") for p in caught.value.problems)
    assert all("\n" not in str(p) for p in caught.value.problems)  # one line each


@pytest.mark.parametrize(("route", "prefix"), [
    ("/caf%C3%A9/*", "/caf\u00e9"), ("/caf\u00e9/*", "/caf%C3%A9"), ("/a//b/*", "/a/b"),
])  # fmt: skip
def test_a_prefix_spelt_otherwise_than_its_route_begins_it(
    tmp_path: Path, route: str, prefix: str
) -> None:
    """Routes and prefixes are read as request paths are: no "begins none of its routes"
    for two spellings of one path."""
    loaded = load(tmp_path, dedent(f"""
        <manifest><process><id>a</id><executable>python3</executable><route>{route}</route>
          <communication_mode>passthrough</communication_mode>
          <strip_prefix>{prefix}</strip_prefix></process></manifest>
    """))  # fmt: skip
    assert loaded.processes[0].strip_prefix == prefix


def test_two_spellings_of_one_route_are_one_route(tmp_path: Path) -> None:
    """Routes are read as request paths are, so /caf%C3%A9/* and /café/* are the same route,
    which one process only may have."""
    text = dedent("""
        <manifest>
          <process><id>a</id><executable>python3</executable><route>/caf%C3%A9/*</route></process>
          <process><id>b</id><executable>python3</executable><route>/café//*</route></process>
        </manifest>
    """)
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, text)
    assert [(p.line, p.message) for p in caught.value.problems] == [(3, (
        '<process id="b">: <route> "/café/*" is already used by <process id="a"> (line 2); '
        "a route belongs to one process; remove one"))]  # fmt: skip


def test_a_value_already_refused_sets_off_no_second_problem(tmp_path: Path) -> None:
    """A route or a port refused on its own is no example for <strip_prefix> to give
    ('write e.g. "0"') nor a port for two processes to share: its one problem is said."""
    text = dedent("""
        <manifest>
          <process><id>a</id><executable>python3</executable><route>0</route>
            <communication_mode>passthrough</communication_mode><port>0</port>
            <strip_prefix>/a</strip_prefix></process>
          <process><id>b</id><executable>python3</executable><route>/b/*</route>
            <communication_mode>passthrough</communication_mode><port>0</port></process>
        </manifest>
    """)
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, text)
    assert [p.message for p in caught.value.problems] == [
        '<process id="a">: <route> "0" must start with "/": write "/0"',
        '<process id="a">: <port> "0" should be greater than or equal to 1',
        '<process id="b">: <port> "0" should be greater than or equal to 1',
    ]


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = dedent("""
        <manifest>
          <process>
            <id>a</id>
            <executable>python3</executable>
            <route>/a/*</route>
            <timeot>5s</timeot>
          </process>
          <process>
            <id>a</id>
            <executable>python3</executable>
            <route>/a/*</route>
            <pipe_name>a</pipe_name>
          </process>
        </manifest>
    """)
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, text)
    messages = [(p.line, p.message) for p in caught.value.problems]
    assert [line for line, _ in messages] == [6, 9, 11, 12], messages
    assert "did you mean <timeout>?" in messages[0][1]
    assert '<id> "a" is already used by <process id="a"> (line 3)' in messages[1][1]
    assert '<route> "/a/*" is already used' in messages[2][1]
    assert '<pipe_name> "a" is already used' in messages[3][1]


def test_a_process_written_twice_on_one_line_is_reported(tmp_path: Path) -> None:
    """A manifest written on one line (generated, minified) that repeats a process: the two
    are alike to the last value, their line included, yet two."""
    block = "<process><id>a</id><executable>python3</executable><route>/a/*</route></process>"
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, f"<manifest>{block}{block}</manifest>")
    assert [p.message.partition(";")[0] for p in caught.value.problems] == [
        '<process id="a">: <id> "a" is already used by <process id="a"> (line 1)',
        '<process id="a">: <route> "/a/*" is already used by <process id="a"> (line 1)',
    ]


def test_socket_path_too_long_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "manifest.xml"
    path.write_text(process(*OK, f"<pipe_name>{'p' * 120}</pipe_name>"))
    with pytest.raises(ManifestError, match="over this platform's 107"):
        manifest.load(path, socket_dir=Path("/tmp/ll-x"))


def test_schema_knows_exactly_the_loaders_elements() -> None:
    xsd = Path(manifest.__file__).with_name("manifest.xsd")
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    tree = etree.parse(str(xsd))
    names = tree.xpath(
        "//xs:complexType[@name='Process']/xs:choice/xs:element/@name", namespaces=ns
    )
    assert set(names) == set(manifest_elements.ELEMENTS)
    task = tree.xpath("//xs:complexType[@name='Task']/xs:choice/xs:element/@name", namespaces=ns)
    assert set(task) == set(manifest_elements.TASK_ELEMENTS)


def test_bundled_manifest_is_valid() -> None:
    root = Path(__file__).parents[1]
    loaded = manifest.load(root / "manifest.xml", socket_dir=Path("/tmp/ll-x"))
    # One child per way of talking to it (a worker, mode none, is the README's example).
    assert {p.communication_mode for p in loaded.processes} == set(Mode) - {Mode.NONE}


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(process("<id>a b</id>", "<executable>python3</executable>", "<route>x</route>"))
    result = run_command("check", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[2] == f"local-lambdas: {path} has 2 problem(s)"
    assert lines[0].startswith(f"{path}:3: ") and "must be a name without spaces" in lines[0]
    assert lines[1].startswith(f"{path}:5: ") and "must start with" in lines[1]


def test_check_ok_exits_0() -> None:
    for args in (["check", "manifest.xml"], ["check"]):  # manifest.xml is the default
        result = run_main(*args, cwd=Path(__file__).parents[1])
        assert result.returncode == 0, result.stderr
        assert "OK, 4 process(es)" in result.stderr


def test_every_command_has_its_own_help() -> None:
    for command in ("check", "run"):
        result = run_main(command, "--help")
        assert result.returncode == 0, result.stderr
        assert f"usage: local-lambdas {command}" in result.stdout


def test_help_is_a_word_as_git_and_pip_take_it(tmp_path: Path) -> None:
    """`local-lambdas help` was read as a manifest named help: "help: no such file"."""
    for argv, usage in ((["help"], "usage: local-lambdas [-h]"),
                        (["help", "run"], "usage: local-lambdas run "),
                        (["help", "export"], "usage: local-lambdas export ")):  # fmt: skip
        result = run_main(*argv, cwd=tmp_path)
        assert result.returncode == 0 and result.stdout.startswith(usage), result
    (tmp_path / "help").mkdir()  # a folder of that name (docs, say) is no manifest
    result = run_main("help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: local-lambdas"), result
    # A manifest of that name is still run (here: read, and refused for what it holds).
    (tmp_path / "help").rmdir()
    (tmp_path / "help").write_text("<manifest><bogus/></manifest>")
    result = run_main("help", cwd=tmp_path)
    assert result.returncode == 1 and "usage:" not in result.stdout, result


@pytest.mark.parametrize(("argv", "says"), [
    (["m.xml", "--wach"], "local-lambdas: unknown option --wach; did you mean --watch?"),
    (["--frobnicate"], "local-lambdas: unknown option --frobnicate (see"),
    (["chek"], "local-lambdas: no command chek; did you mean local-lambdas check?"),
    (["chek", "m.xml"], "local-lambdas: no command chek; did you mean local-lambdas check m.xml?"),
    (["exprot", "compose"], "local-lambdas: no command exprot; did you mean local-lambdas export"),
    # Other runners' words (honcho's start, compose's up, pm2's status): `start` and
    # `status` were told "did you mean local-lambdas restart?".
    (["start", "dev.xml"], "local-lambdas: no command start: a manifest runs with no command "
                           "word: local-lambdas dev.xml (see"),
    (["status"], "local-lambdas: no command status: a running proxy tells its processes' "
                 "states at /_/status"),
    (["validate"], "local-lambdas: no command validate: local-lambdas check MANIFEST"),
    # Other servers' options: --host was told "did you mean --port?", --json --version.
    (["--host", "0.0.0.0"], "local-lambdas: unknown option --host: --bind HOST:PORT, e.g. "
                            "--bind 0.0.0.0:3000 (or --port PORT) (see"),
    (["-f", "dev.xml"], "local-lambdas: unknown option -f: the manifest is named without an "
                        "option: local-lambdas MANIFEST [options] (see"),
    (["run", "--json", "--", "true"], "local-lambdas run: unknown option --json: --log-format "
                                      "json (see local-lambdas run --help)"),
    # ...told only where the command takes what it names: check listens nowhere.
    (["check", "--host", "x", "m.xml"], "local-lambdas check: unknown option --host (see "),
    (["a.xml", "b.xml"], "local-lambdas: unexpected b.xml: one MANIFEST at a time (see"),
    # It was argparse's "invalid int value: 'abc'"; a port out of range was said apart.
    (["--port", "abc"], "local-lambdas: argument -p/--port: 'abc' is not a port (0-65535) (see"),
    (["--port", "70000"], "local-lambdas: argument -p/--port: '70000' is not a port (0-65535)"),
    (["check", "--bot"], "local-lambdas check: unknown option --bot; did you mean --boot? "
                         "(see local-lambdas check --help)"),
    (["restart", "a", "b"], "local-lambdas restart: unexpected b (see local-lambdas restart"),
    # A process whose <id> starts with "-": it was "the following arguments are required: ID".
    (["restart", "-web"], "local-lambdas restart: unknown option -web; if it is the ID, give it "
                          'after "--": local-lambdas restart -- -web (see'),
    (["export", "compos"], "local-lambdas export: argument engine: invalid choice: 'compos'"),
])  # fmt: skip
def test_a_usage_error_is_one_line_with_the_likely_fix(
    argv: list[str], says: str, tmp_path: Path
) -> None:
    """Not argparse's whole usage (twenty lines) above the one that matters: the line, the
    option or command it was probably meant as, and where the help is."""
    result = run_main(*argv, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(says) and result.stderr.count("\n") == 1, result.stderr
    assert "usage:" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("command", "after"), [([], []), (["check"], []), (["run"], ["--", "true"])]
)
def test_a_manifest_whose_name_starts_with_a_dash_is_told_how_to_name_it(
    command: list[str], after: list[str], tmp_path: Path
) -> None:
    """argparse takes `-dev.xml` for an option; `./-dev.xml` names it, in every command."""
    (tmp_path / "-dev.xml").write_text(f"<manifest>{process_xml('svc', '/api/*')}</manifest>")
    result = run_main(*command, "-dev.xml", *after, cwd=tmp_path)
    assert result.returncode == 2, result
    assert 'unknown option -dev.xml; a MANIFEST that starts with "-" is named ./-dev.xml' in (
        result.stderr
    ), result.stderr
    assert run_main("check", "./-dev.xml", cwd=tmp_path).returncode == 0


def test_a_command_word_after_an_option_is_told_to_go_first(tmp_path: Path) -> None:
    """`local-lambdas --port 4000 run -- pytest` took `run` for the manifest: "no command
    run; did you mean local-lambdas run?"."""
    result = run_main("--port", "4000", "check", cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr.startswith("local-lambdas: check comes first: local-lambdas check ")


@pytest.mark.parametrize("argv", [
    ["manifest.xml", "run", "--", "pytest"], ["--bind", "127.0.0.1:0", "manifest.xml", "check"],
])  # fmt: skip
def test_a_command_word_after_the_manifest_is_told_to_go_first(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    word = "run" if "run" in argv else "check"
    assert cli.main(argv) == 2
    assert f"{word} comes first: local-lambdas {word} [options]" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "says"), [
    (["--bind", "8080"], "--bind/BIND_ADDRESS '8080' must be HOST:PORT, e.g. 127.0.0.1:8080"),
    (["--bind", "localhost"], "--bind/BIND_ADDRESS 'localhost' must be HOST:PORT, e.g. "
                              "localhost:3000"),
    (["--bind", "[::1]"], "--bind/BIND_ADDRESS '[::1]' must be HOST:PORT, e.g. [::1]:3000"),
    (["--bind", "::"], "--bind/BIND_ADDRESS '::' must be HOST:PORT, e.g. 127.0.0.1:3000"),
    # Read as the host ":" and port 1, it was "cannot listen on ::1: : is not a name".
    (["--bind", "::1"], "--bind/BIND_ADDRESS '::1': an IPv6 address goes in brackets, the "
                        "port after them, e.g. [::1]:3000"),
    # Read as the host "http" and a port "//127.0.0.1:3000", it was told about IPv6.
    (["--bind", "http://127.0.0.1:3000/"], "--bind/BIND_ADDRESS 'http://127.0.0.1:3000/' is a "
                                           "URL; give HOST:PORT, e.g. 127.0.0.1:3000"),
    (["--bind", "https://localhost"], "--bind/BIND_ADDRESS 'https://localhost' is a URL; give "
                                      "HOST:PORT, e.g. localhost:3000"),
    (["--bind", "[::1]:99999"], "--bind/BIND_ADDRESS '[::1]:99999': 99999 is not a port (0-65535)"),
    # Said once it had listened, as the socket directory was made: "File exists".
    (["--socket-dir", __file__], f"--socket-dir {__file__}: a file, not a directory; give a "
                                 "directory, or a path for one to be made"),
])  # fmt: skip
def test_where_to_listen_is_a_usage_error_before_the_manifest_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str
) -> None:
    """A bad --bind or --socket-dir is said alone, with status 2, not after the manifest's own
    problems (and then the manifest's status 1)."""
    assert cli.main([*flags, str(tmp_path / "missing.xml")]) == 2
    assert capsys.readouterr().err == f"local-lambdas: {says}\n"


@pytest.mark.parametrize(("flags", "clash"), [
    (["--port", "3999"], True), (["--bind", "0.0.0.0:3999"], True),
    (["--port", "4000"], False), (["--bind", "192.0.2.7:3999"], False),
])  # fmt: skip
def test_a_childs_port_where_the_proxy_listens_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], clash: bool
) -> None:
    """A child given the proxy's own port would fail to listen at every start: said once,
    before anything starts (a proxy on another address of the machine leaves it alone)."""
    path = tmp_path / "manifest.xml"
    path.write_text(
        f"<manifest><process><id>web</id><executable>{sys.executable}</executable>"
        "<route>/w/*</route><communication_mode>passthrough</communication_mode>"
        "<port>3999</port></process></manifest>"
    )
    # --only a process that is not there: a usage error after the clash's check, no run.
    status = cli.main([*flags, "--only", "nothing", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    said = ('local-lambdas: <process id="web"> has <port>3999</port>, where the proxy '
            "itself listens")  # fmt: skip
    assert (said in err) == clash, err


def test_an_option_value_that_is_a_command_word_is_a_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A process may be called run: `--only run` is that, not the command out of place.
    assert cli.main(["--only", "run", str(tmp_path / "missing.xml")]) == 1
    assert "comes first" not in capsys.readouterr().err


@pytest.mark.parametrize(("command", "status", "says", "first"), [
    ("no-such-command-here", 127, "no-such-command-here: command not found", True),
    ("./no-such-script.sh", 127, "./no-such-script.sh: No such file or directory", True),
    (__file__, 126, f"{__file__}: Permission denied", True),  # a file that is not executable
    (str(CHILDREN), 126, f"{CHILDREN}: Is a directory", True),
    pytest.param("./riscv", 126, "./riscv: is a program for RISC-V processors", True,
                 marks=pytest.mark.skipif(sys.platform != "linux", reason="ELF is Linux's")),
])  # fmt: skip
def test_run_exits_like_a_shell_when_its_command_cannot_run(
    tmp_path: Path, command: str, status: int, says: str, first: bool
) -> None:
    """A command that is not there, or cannot run, is told before any child starts (`first`),
    not once the whole backend is up: a build for another processor too, which uvloop's
    exec would hand to the shell ("ELF: not found")."""
    (tmp_path / "riscv").write_bytes(elf_program(243))
    (tmp_path / "riscv").chmod(0o755)
    (tmp_path / "manifest.xml").write_text(
        f"<manifest><process><id>svc</id><executable>{sys.executable}</executable>"
        f"<arg>{CHILDREN / 'behave.py'}</arg><route>/api/*</route></process></manifest>"
    )
    result = run_command("run", "--", command, cwd=tmp_path)
    assert result.returncode == status, result.stderr
    assert says in result.stderr
    assert ("svc: starting" in result.stdout + result.stderr) != first


@pytest.mark.skipif(IS_WINDOWS, reason="the task writes a shell script")
def test_run_takes_a_command_its_task_makes(tmp_path: Path) -> None:
    """With a <task> (a build of the test runner, say), a command not there yet is looked
    for only once the task has run, not refused before anything starts."""
    (tmp_path / "manifest.xml").write_text(
        "<manifest><task><id>build</id><executable>sh</executable><arg>-c</arg>"
        "<arg>printf '#!/bin/sh\\nexit 7\\n' &gt; made.sh &amp;&amp; chmod +x made.sh</arg>"
        f"</task><process><id>svc</id><executable>{sys.executable}</executable>"
        f"<arg>{CHILDREN / 'behave.py'}</arg><route>/api/*</route></process></manifest>"
    )
    result = run_command("run", "--", "./made.sh", cwd=tmp_path)
    assert result.returncode == 7, result.stdout + result.stderr


@pytest.mark.skipif(IS_WINDOWS, reason="no shell scripts on Windows")
@pytest.mark.parametrize("loop", ["asyncio", UVLOOP])
def test_scripts_with_no_shebang_run_through_the_shell_under_either_loop(
    tmp_path: Path, loop: str
) -> None:
    """A shell script with no #! line, as a child or as run's command, runs through /bin/sh
    as a shell runs it (and execvp, and uvloop's exec): asyncio's exec refused it, so that
    whether it ran hung on the event loop."""
    (tmp_path / "serve").write_text(f"exec {sys.executable} -S {CHILDREN / 'behave.py'}\n")
    fetch = "import os, urllib.request as u; u.urlopen(os.environ['LOCAL_LAMBDAS_URL'] + '/api/x')"
    (tmp_path / "smoke").write_text(f'{sys.executable} -c "{fetch}" && exit 7\n')
    for name in ("serve", "smoke"):
        (tmp_path / name).chmod(0o755)
    (tmp_path / "manifest.xml").write_text(
        "<manifest><process><id>svc</id><executable>./serve</executable>"
        "<route>/api/*</route></process></manifest>"
    )
    result = run_command("run", "--event-loop", loop, "--", "./smoke", cwd=tmp_path)
    assert result.returncode == 7, result.stdout + result.stderr


def test_missing_manifest_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    result = run_command(cwd=tmp_path)
    assert result.returncode == 1
    assert "manifest.xml: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "manifest.xml").write_text("<manifest/>")
    result = run_command("check", str(tmp_path))  # a folder: the manifest in it is named
    assert result.returncode == 1
    assert f"{tmp_path}: is a folder; pass {tmp_path / 'manifest.xml'}" in result.stderr


def test_help_and_version() -> None:
    result = run_command("--help")
    assert result.returncode == 0
    assert "local-lambdas check MANIFEST" in result.stdout and "--bind" in result.stdout
    assert run_command("--version").stdout.startswith("local-lambdas ")


def test_the_earlier_tools_layout_runs_from_its_repository_root(tmp_path: Path) -> None:
    """Its examples live in examples/NAME/ and name their files from the repository root,
    where its README runs them: `local-lambdas examples/echo-service/manifest.xml`."""
    example = tmp_path / "examples" / "echo-service"
    example.mkdir(parents=True)
    shutil.copy(CHILDREN / "behave.py", example / "echo_service.py")
    (example / "manifest.xml").write_text(
        dedent(f"""
        <?xml version="1.0" encoding="UTF-8"?>
        <manifest>
          <process>
            <id>echo-service</id>
            <executable>{sys.executable}</executable>
            <arg>examples/echo-service/echo_service.py</arg>
            <route>/echo/*</route>
            <pipe_name>echo_service_pipe</pipe_name>
          </process>
        </manifest>
    """)
    )
    smoke = (
        "import os, urllib.request\n"
        "url = os.environ['LOCAL_LAMBDAS_URL'] + '/echo/hi'\n"
        "assert urllib.request.urlopen(url).status == 200\n"
    )
    done = run_command("run", "examples/echo-service/manifest.xml", "--", sys.executable, "-c",
                       smoke, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_help_and_version_do_not_load_the_server(flag: str) -> None:
    """They answer at once: aiohttp (half the start-up), pydantic, rich, lxml and asyncio are
    imported only for what needs them."""
    code = f"from local_lambdas.cli import main\ntry: main([{flag!r}])\nexcept SystemExit: pass"
    assert loaded_by(code, ("aiohttp", "pydantic", "rich", "lxml", "asyncio")) == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_knows_the_commands_and_their_options(tmp_path: Path) -> None:
    script = run_command("completion", "bash")
    assert script.returncode == 0, script.stderr
    (tmp_path / "complete.bash").write_text(script.stdout)
    probe = (
        f"source {tmp_path / 'complete.bash'}\n"
        'comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMP_LINE="$*";'
        ' COMP_POINT=${#COMP_LINE}; _shtab_local_lambdas; echo "${COMPREPLY[*]}"; }\n'
        "comp local-lambdas --watch-i\ncomp local-lambdas re\ncomp local-lambdas check --bo\n"
        "comp local-lambdas export --ingr\n"
    )
    said = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert said.stdout.splitlines() == [
        "--watch-include --watch-ignore",
        "restart",
        "--boot",
        "--ingress-class",
    ]


def test_a_cors_origin_on_the_command_line_is_checked_too() -> None:
    result = run_main(
        "check", "--cors", "localhost:5173", "manifest.xml", cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 2
    assert "argument --cors: 'localhost:5173' is not an origin as browsers send it: write " \
        '"http://localhost:5173"' in result.stderr  # fmt: skip


def test_instances_from_the_command_line_leave_a_fixed_port_to_one(tmp_path: Path) -> None:
    (tmp_path / "manifest.xml").write_text(process(
        *OK, "<communication_mode>passthrough</communication_mode>", "<port>5055</port>"
    ))  # fmt: skip
    ran = run_main("check", "--instances", "3", "manifest.xml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert '<process id="svc">: --instances 3 does not apply: one instance only can listen on ' \
        "its <port> 5055" in ran.stderr  # fmt: skip


def test_an_env_file_naming_a_processs_own_value_is_warned_of(tmp_path: Path) -> None:
    """python-dotenv expands an env file's ${NAME}s as it reads the file, before any process
    has a port: `API=http://127.0.0.1:${PORT}` silently became `http://127.0.0.1:`. Said,
    with the <env> that does what was meant; a name the file sets above, or with a default,
    is dotenv's to read as it does."""
    (tmp_path / ".env").write_text(
        "SELF=http://127.0.0.1:${PORT}/x\nPORT=1\nAGAIN=${PORT}\nDEF=${PIPE_ADDRESS:-/p}\n"
        "CALL='${LOCAL_LAMBDAS_URL}/api?a=1&b=2'\n"
    )
    warnings = load(tmp_path, process(*OK)).warnings
    env_file = str(tmp_path / ".env")
    assert list(warnings) == [
        f"{env_file}:1: SELF: ${{PORT}} is read with the file, before local-lambdas gives each "
        'process its own; to have it, write <env name="SELF">http://127.0.0.1:${PORT}/x</env> '
        "in its <process>",
        f"{env_file}:5: CALL: ${{LOCAL_LAMBDAS_URL}} is read with the file, before local-lambdas "
        'gives each process its own; to have it, write <env name="CALL">${LOCAL_LAMBDAS_URL}'
        "/api?a=1&amp;b=2</env> in its <process>",
    ]


def test_an_env_that_local_lambdas_sets_itself_is_warned_of(tmp_path: Path) -> None:
    """<env name="PORT"> on an HTTP child is replaced by the instance's own port (said, with
    <port> as the fix); on a pipe child PORT is the child's own to use."""
    http = process(*OK, "<communication_mode>passthrough</communication_mode>",
                   '<env name="PORT">5000</env>', '<env name="DEBUG">1</env>')  # fmt: skip
    assert [w.split(": ", 2)[2] for w in load(tmp_path, http).warnings] == [
        '<env name="PORT"> is replaced by the value local-lambdas gives each instance; to fix '
        "the port, write <port>5000</port>"
    ]
    pipe = process(*OK, '<env name="PORT">5000</env>', '<env name="PIPE_ADDRESS">/x</env>',
                   '<env name="LOCAL_LAMBDAS_URL">http://api.test</env>')  # fmt: skip
    assert [w.split(": ", 2)[2] for w in load(tmp_path, pipe).warnings] == [
        '<env name="PIPE_ADDRESS"> is replaced by the value local-lambdas gives each instance',
        '<env name="LOCAL_LAMBDAS_URL"> is replaced by the value local-lambdas gives each '
        "instance; to give the children another, start local-lambdas with --child-url "
        "http://api.test",
    ]
