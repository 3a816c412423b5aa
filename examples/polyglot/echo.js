// A keep-alive pipe child in Node.js, standard library only, written from the protocol alone.
// On each connection to $PIPE_ADDRESS, requests arrive one per line (compact JSON + "\n");
// answer each, in order, with one line. JSON escapes newlines inside strings, so splitting
// the stream on "\n" always yields whole objects.
"use strict";
const fs = require("fs");
const net = require("net");

function answer(request) {
  if (request.uri.includes("/teapot")) {
    return { status: 418, headers: { "Content-Type": "application/json" },
             body: Buffer.from(JSON.stringify({ error: "I am a teapot", lang: "node" })).toString("base64") };
  }
  const described = {
    lang: "node",
    method: request.method,
    uri: request.uri,              // path and query, as the client sent them
    headers: request.headers,      // [name, value] pairs: repeated headers stay repeated
    body: request.body || "",      // base64 of the raw bytes; echoed as it came
  };
  // A list of pairs, not an object, so that two Set-Cookie headers can both be sent.
  const headers = [["Content-Type", "application/json"], ["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]];
  return { status: 200, headers, body: Buffer.from(JSON.stringify(described)).toString("base64") };
}

const path = process.env.PIPE_ADDRESS;
if (fs.existsSync(path)) fs.unlinkSync(path);
net.createServer((socket) => {
  let pending = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk) => {
    pending += chunk;
    let newline;
    while ((newline = pending.indexOf("\n")) !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      socket.write(JSON.stringify(answer(JSON.parse(line))) + "\n");
    }
  });
  socket.on("error", () => socket.destroy());
}).listen(path, () => console.log(`echo.js listening on ${path}`));
