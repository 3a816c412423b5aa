"""The fast lane: the envelope modes' and pass-through's requests answered on a bare asyncio
Protocol (fastlane.py), everything else handed to aiohttp's server (aio/server.py). Its
modules: a connection driven (connection.py; its writing, writing.py; its clock,
timeouts.py), its requests cut from the bytes (requests.py, heads read by http1.py) and
answered (message.py, answers.py, the heads written by answer_heads.py), pass-through's
request and answer relayed (relay_request.py, relay.py) and an upgrade's bytes joined
(tunnel.py)."""
