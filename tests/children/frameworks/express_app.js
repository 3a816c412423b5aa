// An Express application started with `npm start` (package.json's script runs node), so the
// proxy's child is npm and the server its child: the same routes as flask_app.py.
"use strict";
const express = require("express");
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
app.listen(Number(process.env.PORT));
