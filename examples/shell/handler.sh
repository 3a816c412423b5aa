#!/bin/sh
# A request handler in plain sh. socat (see manifest.xml) runs it once per request, with the
# request object on its standard input, and sends what it prints back as the response object
# (docs/protocol.md, "Framing: one-shot pipe"). Needs jq and base64 (coreutils).
set -eu
request=$(cat) # the proxy ends its side of the connection once the request is sent
field() { printf '%s' "$request" | jq -r "$1"; }
# Prints the response object: status, then the text body (base64, on one line).
answer() {
  printf '{"status": %s, "headers": {"Content-Type": "text/plain"}, "body": "%s"}\n' \
    "$1" "$(printf '%s\n' "$2" | base64 | tr -d '\n')"
}
method=$(field .method)
uri=$(field .uri)
case "${uri%%\?*}" in
  */teapot) answer 418 "I am a teapot" ;;
  *) answer 200 "$method $uri: $(($(field .body | base64 -d | wc -c))) bytes, from sh" ;;
esac
