// An ordinary Node.js web server (the `http` module only) that runs behind local-lambdas
// unchanged (communication_mode passthrough): it knows nothing but $PORT.
//   GET /         a greeting, with the headers the proxy added
//   GET /events   Server-Sent Events: a tick a second, five of them
//   POST /echo    the request body back
// Node has no built-in WebSocket server; with the `ws` package (npm install ws) a
// WebSocket route works through the proxy as it would directly.
"use strict";
const http = require("http");

const server = http.createServer((req, res) => {
  if (req.url.startsWith("/events")) {
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
    let tick = 0;
    const timer = setInterval(() => {
      res.write(`data: ${JSON.stringify({ tick })}\n\n`);
      if (++tick === 5) { clearInterval(timer); res.end(); }
    }, 1000);
    req.on("close", () => clearInterval(timer));
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const added = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith("x-")));
    const body = req.method === "POST"
      ? { echo: Buffer.concat(chunks).toString() }
      : { hello: "from a plain Node.js server", path: req.url, added };
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  });
});
server.listen(Number(process.env.PORT || 8000), "127.0.0.1");
