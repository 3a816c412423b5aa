"""Reading manifest.xml into validated config, reporting every problem at once with its line.

This module and reader.py, which holds the manifest's vocabulary and reads each
<process> and <task>, are the only ones that import lxml. Here: the file read and parsed,
the checks across processes (checks.py), and last, once the friendlier checks have
found nothing, `manifest.xsd` (shipped beside this file, the same elements described for
editors).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from lxml import etree

from local_lambdas.config import Manifest
from local_lambdas.errors import ManifestError, Problem
from local_lambdas.manifest.checks import across_processes
from local_lambdas.manifest.reader import Reader


def load(
    path: Path,
    *,
    socket_dir: Path,
    admin_prefix: str = "/_/",
    base: Path | None = None,
    env_files: Sequence[Path] | None = None,
    here: bool = True,
) -> Manifest:
    """Read and validate the manifest at `path`; raise ManifestError listing every problem.

    Relative paths in it (<working_dir>, and <executable> when it is a path) start at `base`,
    by default the directory local-lambdas was started in, as the earlier tool's did (its
    examples run from its repository root), whatever folder the manifest is in.

    `env_files` are read for every child (--env-file); None reads `.env` in `base` when
    there is one, as honcho and foreman do.

    `socket_dir` is where pipe-mode sockets will live; it is needed here so that socket paths
    too long for the platform are reported now, against the <pipe_name> that makes them.
    Routes may not reach into `admin_prefix`, where the proxy's own endpoints are.
    With `here` false (export: the children will run in containers) executables and
    working directories are not looked for on this machine.
    """
    shown = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(
            [Problem(shown, None, "no such file; pass the path of your manifest.xml")]
        ) from None
    except IsADirectoryError:
        inside = path / "manifest.xml"
        fix = f"pass {inside}" if inside.is_file() else "pass the manifest file in it"
        raise ManifestError([Problem(shown, None, f"is a folder; {fix}")]) from None
    except OSError as exc:
        raise ManifestError([Problem(shown, None, f"cannot be read: {exc.strerror}")]) from exc
    root = _parse(data, shown)
    folder = (base or Path.cwd()).resolve()
    reader = Reader(shown, folder, here, path.resolve().parent)
    if env_files is None:
        env_files = [folder / ".env"] if (folder / ".env").is_file() else []
    reader.env.read_global(env_files)
    processes, tasks = reader.read(root)
    across_processes(
        reader.claims, reader.problem, socket_dir=socket_dir, admin_prefix=admin_prefix
    )
    if not reader.problems:
        _check_schema(root, data, reader)
    if reader.problems:
        raise ManifestError(reader.problems)
    return Manifest(
        path=path.absolute(),  # as named, a symbolic link too: each reload follows it anew
        processes=tuple(processes),
        tasks=tuple(tasks),
        warnings=tuple(reader.warnings),
    )


def _encoding_fix(data: bytes) -> str:
    """What to do about bytes the manifest's encoding cannot read: a file saved in a legacy
    encoding (Latin-1, Windows-1252) with no declaration is read as UTF-8, which it is not."""
    declared = re.match(rb"""\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)""", data)
    if declared:
        name = declared[1].decode()
        return (f"the file is not the {name} its first line declares; save it as {name}, "
                "or declare the encoding it is in")  # fmt: skip
    return ("the file is not UTF-8: save it as UTF-8, or declare its encoding in its first "
            'line, as <?xml version="1.0" encoding="ISO-8859-1"?>')  # fmt: skip


def _parse(data: bytes, shown: str) -> etree._Element:
    parser = etree.XMLParser(
        remove_comments=True, remove_pis=True, resolve_entities=False, no_network=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        start = data.lstrip(b"\xef\xbb\xbf \t\r\n")  # (a UTF-8 BOM, blank lines)
        if start and not start.startswith((b"<", b"\xff\xfe", b"\xfe\xff", b"\x00")):
            first = start.splitlines()[0][:40].decode("utf-8", "replace")
            raise ManifestError([Problem(shown, None, (
                f'is not a manifest: it starts with "{first}", and a manifest is XML whose '
                "root is <manifest> (the README's \"The manifest\")"
            ))]) from exc  # fmt: skip
        line = exc.lineno or None
        message = " ".join(str(exc.msg).split(", line ")[0].split())  # (libxml2's hold newlines)
        fix = "fix the markup there"
        if "Double hyphen within comment" in message:
            fix = ("a comment may not hold --, as a commented-out <arg>--port</arg> does; "
                   "delete that line, or write the comment without --")  # fmt: skip
        elif "Invalid bytes in character encoding" in message:
            fix = _encoding_fix(data)
        elif "Unsupported encoding" in message:  # (a name Python knows, libxml2 not: latin-1)
            fix = (
                'declare it by a name XML parsers know, as encoding="ISO-8859-1" or '
                '"windows-1252", or save the file as UTF-8 and drop the declaration'
            )
        elif b"\x00" in data[:2]:  # NULs between ASCII characters, and no byte-order mark
            fix = "the file is UTF-16 without a byte-order mark, which XML needs; save it as UTF-8"
        raise ManifestError(
            [Problem(shown, line, f"not well-formed XML: {message}; {fix}")]
        ) from exc
    entities = list(root.iter(etree.Entity))
    if entities:  # declared in a DTD; never expanded (no file or network is read for them)
        raise ManifestError([
            Problem(shown, node.sourceline or None,
                    f"{node.text}: a manifest expands no entities of its own (a DTD's); "
                    "write the text in place")
            for node in entities
        ])  # fmt: skip
    namespace = etree.QName(root).namespace
    if namespace is not None:
        # <manifest xmlns="...">, for an editor's schema: read by the elements' local names,
        # as the earlier tool read it. Elements of another namespace stay unknown elements.
        for element in root.iter(f"{{{namespace}}}*"):
            element.tag = etree.QName(element).localname
        etree.cleanup_namespaces(root)
    if root.tag != "manifest":
        raise ManifestError(
            [
                Problem(
                    shown,
                    root.sourceline,
                    f"the root element is <{root.tag}>; it must be "
                    "<manifest>, holding one <process> per child program",
                )
            ]
        )
    return root


def _check_schema(root: etree._Element, data: bytes, reader: Reader) -> None:
    schema = etree.XMLSchema(
        etree.parse(str(resources.files("local_lambdas.manifest") / "manifest.xsd"))
    )
    if not schema.validate(root):
        stray = _stray_text(root, data)
        for line, where, text in stray:
            reader.problem(line, f'{where} holds text outside its elements, "{text}": remove '
                           "it, or make it a comment, <!-- like this -->")  # fmt: skip
        for entry in schema.error_log:
            if stray and "Character content other than whitespace" in entry.message:
                continue  # said above, with the text
            reader.problem(entry.line or None, f"schema: {entry.message}")


def _stray_text(root: etree._Element, data: bytes) -> list[tuple[int | None, str, str]]:
    """Text in <manifest>, <process> or <task> that is in none of their elements (a word
    typed between two of them): its line in `data`, the element it is in, and the text."""
    bom = data[:2] in (b"\xff\xfe", b"\xfe\xff")  # (lxml's docinfo says UTF-8 then)
    encoding = "utf-16" if bom else root.getroottree().docinfo.encoding or "utf-8"
    # Each line's text outside its tags, where a stray word is looked for.
    source = [re.sub(r"<[^>]*>", " ", n) for n in data.decode(encoding, "replace").splitlines()]
    found: list[tuple[int | None, str, str]] = []
    for element in (root, *root.iterchildren("process", "task")):
        children = list(element)
        pieces = [(element.text, element.sourceline, children[0] if children else None)]
        pieces += [
            (child.tail, child.sourceline, children[at + 1] if at + 1 < len(children) else None)
            for at, child in enumerate(children)
        ]
        for text, before, after in pieces:
            if not text or not text.strip():
                continue
            words = text.strip()
            if after is not None and after.sourceline:  # counted back from what follows
                line = after.sourceline - text[text.index(words) :].count("\n")
            else:  # (last in its element, whose end has no line) found after what it follows
                first = words.splitlines()[0]
                line = next((n for n in range(before or 1, len(source) + 1)
                             if first in source[n - 1]), before)  # fmt: skip
            found.append((line, f"<{element.tag}>", " ".join(words.split())[:60]))
    return found
