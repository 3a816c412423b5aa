// An Express application started with `npm start` (package.json's script runs node), so the
// proxy's child is npm and the server its child: the same routes as flask_app.py, and a
// WebSocket echo at /ws with the ws package (as fastapi_app.py's).
"use strict";
const express = require("express");
const { WebSocketServer } = require("ws");
const app = express();
app.use(express.text({ type: "*/*" }));

app.all("/echo", (req, res) => {
  res.json({
    method: req.method,
    path: req.path,
    query: req.originalUrl.includes("?") ? req.originalUrl.split("?")[1] : "",
    body: typeof req.body === "string" ? req.body : "",
    prefix: req.get("X-Forwarded-Prefix") || null,
    host: req.get("Host"),
  });
});
app.get("/redirect", (req, res) => res.redirect(302, "/echo?from=redirect"));
app.get("/login", (req, res) =>
  res.redirect(302, (req.get("X-Forwarded-Prefix") || "") + "/echo?from=login"));
app.get("/stream", (req, res) => {
  res.set("Content-Type", "text/event-stream");
  let i = 0;
  const timer = setInterval(() => {
    res.write(`data: ${i}\n\n`);
    if (++i === 3) { clearInterval(timer); res.end(); }
  }, 200);
});
app.get("/forever", (req, res) => {
  res.set("Content-Type", "text/event-stream");
  const timer = setInterval(() => res.write("data: tick\n\n"), 50);
  req.on("close", () => clearInterval(timer));
});
const server = app.listen(Number(process.env.PORT));
const sockets = new WebSocketServer({
  server,
  path: "/ws",
  handleProtocols: (asked) => (asked.has("chat") ? "chat" : false),
});
sockets.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => {
    if (!isBinary && data.toString() === "close-me") socket.close(4002, "done");
    else socket.send(data, { binary: isBinary });
  });
});
