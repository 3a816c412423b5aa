// A Node.js child using the helper beside it: works in every communication mode.
"use strict";
const { serve } = require("./local_lambdas");

serve(async (request) => {
  const name = request.query.get("name") || "world";
  return {
    status: 200,
    headers: [["Content-Type", "application/json"]],
    body: JSON.stringify({ greeting: `Hello, ${name}!`, from: "node", pid: process.pid,
                           method: request.method, uri: request.uri }),
  };
});
