"""One request the fast lane answers (`Message`: its head, read, and its body once whole),
and which routed heads the lane answers at all (`lane_takes`); requests.py cuts them
from a connection's bytes. No I/O, table-tested (tests/units/test_lane_heads.py).
"""

from __future__ import annotations

from local_lambdas.config import Fate
from local_lambdas.envelope import Repeats
from local_lambdas.lane.http1 import ENVELOPE, MOVED, NO_ROUTE, NOT_ALLOWED, PREFLIGHT, RELAY
from local_lambdas.proxy import BUFFERED, Plan
from local_lambdas.supervision.pool import Pool


class Message:
    """One request the lane answers: its head, read, and its body once whole (a plain class:
    see proxy.Plan)."""

    __slots__ = (
        "block",
        "body",
        "body_length",
        "continues",
        "head_length",
        "headers",
        "keep_alive",
        "method",
        "origin",
        "path",
        "pool",
        "refusal",
        "repeats",
        "request_id",
        "streams",
        "target",
        "upgrade",
        "version",
    )  # fmt: skip

    def __init__(
        self, pool: Pool | None, method: str, target: str, path: str, version: str,
        headers: list[tuple[str, str]], block: str, request_id: str | None,
        origin: str | None, head_length: int, body_length: int, keep_alive: bool,
        upgrade: str | None = None, continues: bool = False, refusal: Plan | None = None,
        repeats: Repeats | None = None,
    ) -> None:  # fmt: skip
        self.pool = pool  # None for a request no route takes (its `refusal` says so)
        self.refusal = refusal  # the plan of one the proxy answers itself (404, 405, preflight)
        self.method = method
        self.target = target  # as sent: path, query and fragment
        self.path = path  # decoded, as routes see it
        self.version = version  # "1.1" or "1.0"
        self.headers = headers
        self.block = block  # its header block, as http1.HeadReader keeps it
        self.request_id = request_id  # the client's X-Request-Id
        self.origin = origin  # its Origin, for CORS
        self.head_length = head_length
        self.body_length = body_length
        self.keep_alive = keep_alive
        self.upgrade = upgrade  # a WebSocket upgrade's Upgrade header (pass-through only)
        self.continues = continues  # the client waits for 100 Continue before its body
        self.repeats = repeats  # for the envelope's JSON of a head that repeats the last one
        # A pass-through body too large to hold: it streams to the child (relay_request.Upload), and
        # `next` gives the message at its head, its body left to `take`.
        self.streams = pool is not None and pool.relays and body_length > BUFFERED
        self.body = b""

    def again(self, headers: list[tuple[str, str]]) -> Message:
        """The same request once more, with `headers` (a head repeated byte for byte; its
        body is empty)."""
        return Message(
            self.pool, self.method, self.target, self.path, self.version, headers, self.block,
            self.request_id, self.origin, self.head_length, 0, self.keep_alive, self.upgrade,
            self.continues, self.refusal, self.repeats,
        )  # fmt: skip


def lane_takes(
    fate: Fate, method: str, version: str, length: int, noted: dict[str, str],
    switching: bool,
) -> bool:  # fmt: skip
    """Whether the fast lane answers a request read by a HeadReader, routed to `fate`
    (`switching`: llhttp saw Connection: upgrade with an Upgrade). The admin endpoints are
    aiohttp's side's, and the refusals but a 404 or 405 without a body and a CORS preflight
    (a browser's /favicon.ico, or the preflight before its fetches: answered by aiohttp's
    side, their connection would stay there, every later fetch at three times the cost); so
    are Expect but a pass-through request's 100-continue, upgrades but a pass-through
    WebSocket's, and an envelope-mode body past BUFFERED."""
    # (An Enum's hash is a Python call: `is`, not a set, on this path.)
    relay = fate is RELAY
    if not (relay or fate is ENVELOPE):
        refused = fate is NO_ROUTE or fate is NOT_ALLOWED or fate is PREFLIGHT or fate is MOVED
        return (
            refused and length == 0 and not switching and "expect" not in noted
            and "upgrade" not in noted
        )  # fmt: skip
    if not relay and length > BUFFERED:  # a body to wait on disk (spool.py): aiohttp's side's
        return False
    relayed = relay and version == "1.1"  # Expect and upgrades need both
    expect = noted.get("expect")
    if expect is not None and not (relayed and expect.lower() == "100-continue"):
        return False
    upgrade = noted.get("upgrade")
    if upgrade is not None or switching:  # a pass-through WebSocket's is the lane's (tunnel.py)
        return (
            relayed and switching and method == "GET" and length == 0
            and upgrade is not None and upgrade.lower() == "websocket"
        )  # fmt: skip
    return True
