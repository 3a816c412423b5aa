// The benchmark's one handler: answers every request with BODY_SIZE bytes of JSON.
// BENCH_PLAIN=1 serves it as an ordinary HTTP server (direct, nginx, pass-through rows);
// otherwise through the Node.js child helper, in whichever mode local-lambdas chose.
"use strict";
const http = require("http");
const path = require("path");
const { serve } = require(path.join(__dirname, "..", "examples", "children", "local_lambdas"));

const size = Number(process.env.BODY_SIZE || 100);
function body() {
  const head = JSON.stringify({ ok: true, pad: "" });
  return JSON.stringify({ ok: true, pad: "x".repeat(Math.max(0, size - head.length)) });
}

if (process.env.BENCH_PLAIN) {
  const [host, port] = process.env.HTTP_ADDRESS.split(":");
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const payload = body();
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) });
      res.end(payload);
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(Number(port), host);
} else if (process.env.BENCH_CHANGING) {
  // An answer whose JSON changes around the body every time: a header with a counter in it,
  // as a child that stamps its answers (a time, an id) writes them.
  let n = 0;
  serve(async () => ({ status: 200, headers: { "Content-Type": "application/json", "X-Answer": String(n++) }, body: body() }));
} else {
  serve(async () => ({ status: 200, headers: { "Content-Type": "application/json" }, body: body() }));
}
