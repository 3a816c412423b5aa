"""aiohttp's side of the serving: the requests the fast lane (lane/) hands over, and every
request under --no-fast-lane. server.py is aiohttp's low-level server held to the lane's
rules (parser.py feeds its parser a head at a time, as nginx judges one); handler.py reads a
request and answers it through proxy.py; site.py serves each listening socket, the lane
taking its connections first."""
