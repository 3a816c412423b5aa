// A Node.js web server started as most are: listen(PORT) with no host, which binds `::`
// (IPv6 and IPv4 both). It answers every request with its pid.
"use strict";
require("http")
  .createServer((req, res) => res.end(JSON.stringify({ pid: process.pid, url: req.url })))
  .listen(Number(process.env.PORT));
