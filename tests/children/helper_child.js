// A child built on the Node.js helper: echoes the request; /boom throws in the handler.
"use strict";
const path = require("path");
const { serve } = require(path.join(__dirname, "..", "..", "examples", "children", "local_lambdas"));

// What handlers get wrong: each answered 500, the child saying what it was.
const WRONG = {
  "/h/none": undefined,
  "/h/str": "a string",
  "/h/status": { status: "200", body: "x" },
  "/h/body": { status: 200, body: 5 },
  "/h/lambda": { statusCode: 404, body: "x" },
};

serve(async (request) => {
  if (request.path.endsWith("/boom")) throw new Error("boom");
  if (request.path in WRONG) return WRONG[request.path];
  const query = {};
  for (const [key, value] of request.query) (query[key] = query[key] || []).push(value);
  return {
    status: 201,
    headers: [["Content-Type", "application/json"], ["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]],
    body: JSON.stringify({
      method: request.method, uri: request.uri, path: request.path, query,
      headers: request.headers, x_tag: request.header("x-tag"),
      body: request.body.toString("base64"), request_id: request.requestId, pid: process.pid,
    }),
  };
});
