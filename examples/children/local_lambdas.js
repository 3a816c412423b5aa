// Write a local-lambdas child in Node.js without touching the protocol. Node's standard
// library only: copy this file next to your child and
//
//   const { serve } = require("./local_lambdas");
//   serve(async (request) => ({ status: 200, headers: { "Content-Type": "text/plain" },
//                               body: `hello ${request.path}\n` }));
//
// `serve` listens where local-lambdas says ($PIPE_ADDRESS or $HTTP_ADDRESS) and speaks the
// protocol the manifest chose: one-shot pipe, keep-alive pipe, or the `http` envelope.
// request: { method, uri, path, query (URLSearchParams), headers ([name, value] pairs),
//            header(name), body (Buffer), requestId, client }
// The handler returns (or resolves to) { status, headers, body }: headers an object or a list
// of [name, value] pairs, body a Buffer or a string (sent as UTF-8); a missing status is 200.
// A thrown error, or what is not such an answer (undefined, a string, a status "200", a body
// that is a number), is logged and answered with a 500. A request without the run's token
// ($LOCAL_LAMBDAS_TOKEN, which local-lambdas sends in every request object) gets a 403 and
// never reaches the handler.
"use strict";

const fs = require("fs");
const http = require("http");
const net = require("net");

function toRequest(data) {
  const url = new URL(data.uri, "http://local");
  const headers = data.headers || [];
  return {
    method: data.method,
    uri: data.uri,
    path: url.pathname,
    query: url.searchParams,
    headers,
    header(name) {
      const found = headers.find(([key]) => key.toLowerCase() === name.toLowerCase());
      return found ? found[1] : undefined;
    },
    body: Buffer.from(data.body || "", "base64"),
    requestId: data.request_id || "",
    client: data.client,
  };
}

// One request object (a string of JSON, or what it parsed to) in, one response object (a
// string of JSON) out.
async function answer(handler, request) {
  try {
    const data = typeof request === "string" ? JSON.parse(request) : request;
    const token = process.env.LOCAL_LAMBDAS_TOKEN;
    if (token && data.token !== token) {
      return encoded(403, { "Content-Type": "text/plain" }, "not from local-lambdas\n");
    }
    const response = await handler(toRequest(data));
    return encoded(...checked(response));
  } catch (error) {
    console.error(error);
    return encoded(500, [["Content-Type", "text/plain"]], "handler failed\n");
  }
}

// What the handler returned as status, headers and body; a TypeError saying what is wrong
// with it, so that the 500 it becomes is explained in the child's output.
function checked(response) {
  const shown = (value) => String(JSON.stringify(value) ?? value).slice(0, 80);
  if (response === null || typeof response !== "object" || Buffer.isBuffer(response)) {
    throw new TypeError(`the handler returned ${shown(response)}, not {status, headers, body}`);
  }
  if (response.status === undefined && response.statusCode !== undefined) {
    // (AWS Lambda's shape: taken as ours, its status would be lost, a 200.)
    throw new TypeError(`the handler returned statusCode ${shown(response.statusCode)}, ` +
      "AWS Lambda's name for it: return {status, headers, body}");
  }
  const status = response.status ?? 200;
  const headers = response.headers ?? {};
  const body = response.body ?? "";
  if (!Number.isInteger(status)) throw new TypeError(`status ${shown(status)} is not an integer`);
  if (typeof body !== "string" && !(body instanceof Uint8Array)) {
    throw new TypeError(`body ${shown(body)} is not a string or a Buffer`);
  }
  return [status, headers, body];
}

function encoded(status, headers, body) {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body); // (a Buffer is not copied)
  return JSON.stringify({ status, headers, body: bytes.toString("base64") });
}

const close = (socket) => socket.destroy();

function servePipe(path, handler) {
  const oneShot = process.env.PIPE_FRAMING === "oneshot";
  if (process.platform !== "win32" && fs.existsSync(path)) fs.unlinkSync(path);
  // allowHalfOpen: in one-shot mode the proxy shuts its side first, and the answer follows.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    // A request ending in "\n" is the keep-alive framing: answer with a line, wait for more,
    // in order. One that ends at end-of-file is one-shot: answer, then close.
    // What came since the last request's end, as it came: joined once a request is whole, so
    // that a large one costs its size, not its size once a read.
    let chunks = [];
    const joined = () => (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString();
    let queue = Promise.resolve();
    let answered = false;
    socket.on("data", (chunk) => {
      if (oneShot) {
        chunks.push(chunk);
        // Answered as soon as the JSON parses: a Windows pipe cannot be half-closed, so
        // the end of the request may never be signalled. Only a chunk that ends the object
        // is worth a parse: a large body arrives in many.
        if (chunk[chunk.length - 1] !== 0x7d) return;
        let request;
        try {
          request = JSON.parse(joined()); // (parsed once: the answer is made from it)
        } catch {
          return;
        }
        answered = true;
        chunks = [];
        // Written, then closed: the request is read to its end, so no half-close is needed
        // (a system call and a stream's shutdown fewer a request). Closed on the next tick:
        // a socket destroyed inside its write callback makes Node build (and throw away) an
        // ERR_STREAM_DESTROYED with its stack, a sixth of the child's time a request.
        queue = queue.then(async () => {
          socket.write(await answer(handler, request), () => process.nextTick(close, socket));
        });
        return;
      }
      let start = 0;
      let newline;
      while ((newline = chunk.indexOf(10, start)) !== -1) {
        chunks.push(chunk.subarray(start, newline));
        const line = joined();
        chunks = [];
        start = newline + 1;
        queue = queue.then(async () => socket.write((await answer(handler, line)) + "\n"));
      }
      if (start < chunk.length) chunks.push(start ? chunk.subarray(start) : chunk);
    });
    socket.on("end", () => {
      if (answered) return;
      queue = queue.then(async () => {
        if (chunks.length) socket.write(await answer(handler, joined()));
        socket.end();
      });
    });
    socket.on("error", () => socket.destroy());
  });
  server.listen(path);
}

function serveHttp(address, handler) {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), address.slice(address.lastIndexOf(":") + 1)];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      const payload = await answer(handler, Buffer.concat(chunks).toString());
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) });
      res.end(payload);
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(Number(port), host);
}

function serve(handler) {
  if (process.env.PIPE_ADDRESS) servePipe(process.env.PIPE_ADDRESS, handler);
  else if (process.env.HTTP_ADDRESS) serveHttp(process.env.HTTP_ADDRESS, handler);
  else {
    console.error("neither PIPE_ADDRESS nor HTTP_ADDRESS is set: run this under local-lambdas");
    process.exit(1);
  }
}

module.exports = { serve };
