// A Node.js web server started as most are: listen(PORT) with no host, which binds `::`
// (IPv6 and IPv4 both). It answers every request with its pid. Under a pipe mode, a web
// server put on the pipe by mistake: it listens at $PIPE_ADDRESS.
"use strict";
require("http")
  .createServer((req, res) => res.end(JSON.stringify({ pid: process.pid, url: req.url })))
  .listen(process.env.PIPE_ADDRESS ?? Number(process.env.PORT));
