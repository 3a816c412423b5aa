/* A one-shot pipe child in C (POSIX, one file, no libraries):
 *   cc -O2 -o echo-c echo.c
 * For each connection on the Unix socket at $PIPE_ADDRESS: read the request object to
 * end-of-file (the proxy shuts its writing side after sending it), answer with one response
 * object, close. The answer's body is JSON describing the request; /teapot answers 418.
 *
 * No JSON library is needed: the proxy's request is well-formed compact JSON, so the child
 * copies the raw text of "method", "uri", "headers" (a list of [name, value] pairs: repeated
 * headers stay repeated) and "body" (already base64) into its own answer, escapes and all.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding, as the protocol wants; returns a malloc'd string. */
static char *base64(const char *in, size_t n) {
  char *out = malloc(4 * ((n + 2) / 3) + 1), *p = out;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < n) v |= (unsigned char)in[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)in[i + 2];
    *p++ = B64[v >> 18 & 63];
    *p++ = B64[v >> 12 & 63];
    *p++ = i + 1 < n ? B64[v >> 6 & 63] : '=';
    *p++ = i + 2 < n ? B64[v & 63] : '=';
  }
  *p = 0;
  return out;
}

/* The raw JSON value after "key": in the object text: a string (with its quotes and escapes)
 * or an array, copied as it stands. Returns a malloc'd string, or NULL. */
static char *raw_value(const char *json, const char *key) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *start = strstr(json, pattern);
  if (!start) return NULL;
  start += strlen(pattern);
  const char *p = start;
  int depth = 0, in_string = 0;
  for (; *p; p++) {
    if (in_string) {
      if (*p == '\\') p++;               /* skip the escaped character, whatever it is */
      else if (*p == '"') { in_string = 0; if (depth == 0) { p++; break; } }
    } else if (*p == '"') in_string = 1;
    else if (*p == '[') depth++;
    else if (*p == ']') { if (--depth == 0) { p++; break; } }
  }
  return strndup(start, p - start);
}

static void answer(int conn) {
  size_t size = 0, cap = 65536;
  char *request = malloc(cap);
  ssize_t got;
  while ((got = read(conn, request + size, cap - size - 1)) > 0) {   /* to end-of-file */
    size += got;
    if (size + 1 == cap) request = realloc(request, cap *= 2);
  }
  request[size] = 0;
  char *method = raw_value(request, "method"), *uri = raw_value(request, "uri");
  char *headers = raw_value(request, "headers"), *body = raw_value(request, "body");
  int teapot = uri && strstr(uri, "/teapot") != NULL;
  size_t len = 128 + size;
  char *described = malloc(len);
  if (teapot)
    snprintf(described, len, "{\"error\":\"I am a teapot\",\"lang\":\"c\"}");
  else
    snprintf(described, len, "{\"lang\":\"c\",\"method\":%s,\"uri\":%s,\"headers\":%s,\"body\":%s}",
             method ? method : "null", uri ? uri : "null", headers ? headers : "[]",
             body ? body : "\"\"");
  char *encoded = base64(described, strlen(described));
  dprintf(conn, "{\"status\":%d,\"headers\":[[\"Content-Type\",\"application/json\"]],"
                "\"body\":\"%s\"}", teapot ? 418 : 200, encoded);
  free(encoded); free(described); free(request);
  free(method); free(uri); free(headers); free(body);
}

int main(void) {
  const char *path = getenv("PIPE_ADDRESS");
  if (!path) { fprintf(stderr, "PIPE_ADDRESS is not set: run me under local-lambdas\n"); return 1; }
  signal(SIGPIPE, SIG_IGN);
  int server = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  unlink(path);
  if (bind(server, (struct sockaddr *)&addr, sizeof addr) || listen(server, 64)) {
    perror("listen");
    return 1;
  }
  printf("echo-c listening on %s\n", path);
  fflush(stdout);
  for (;;) {
    int conn = accept(server, NULL, NULL);
    if (conn < 0) continue;
    answer(conn);
    close(conn);
  }
}
