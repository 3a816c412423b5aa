"""A real browser (Debian's Chromium, driven by Playwright) on a page from one origin calling
routes through the proxy on another: what CORS is for. Skipped, saying why, where Chromium or
Playwright is not installed (.ci/run installs both)."""

from __future__ import annotations

import shutil

import pytest
from aiohttp import web

from local_lambdas.readiness import free_port
from tests.conftest import process_xml, running

CHROMIUM = shutil.which("chromium")
playwright = pytest.importorskip("playwright.async_api", reason="Playwright is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

# The page's script: one call with credentials and a header that needs a preflight.
PAGE = """<!doctype html><title>front-end</title><script>
async function call(url) {
  try {
    const reply = await fetch(url, {method: "POST", credentials: "include",
                                    headers: {"X-Tag": "a"}, body: "hi"});
    return {status: reply.status, id: reply.headers.get("X-Request-Id"),
            body: await reply.json()};
  } catch (error) { return {error: String(error)}; }
}
</script>"""
# As root, in a machine with no network but its registries (no sandbox, no background calls).
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


async def test_a_page_on_another_origin_calls_a_route(write_manifest, socket_dir) -> None:
    async def page_html(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page_html)
    runner = web.AppRunner(app)
    await runner.setup()
    page_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", page_port).start()
    origin = f"http://127.0.0.1:{page_port}"
    path = write_manifest(process_xml("api", "/api/*", mode="pipe-keepalive"))
    try:
        async with running(path, socket_dir, cors=(origin,)) as run, \
                playwright.async_playwright() as driver:  # fmt: skip
            browser = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page()
                await page.goto(origin + "/")
                allowed = await page.evaluate("url => call(url)", run.url + "/api/x")
                assert allowed["status"] == 200, allowed
                assert allowed["id"], "X-Request-Id is exposed to the page"
                assert allowed["body"]["method"] == "POST"
                assert ["Origin", origin] in allowed["body"]["headers"]
                # The same page, another proxy whose list does not name it: refused.
                async with running(path, socket_dir.with_name(socket_dir.name + "b"),
                                   cors=("http://elsewhere.example",)) as other:  # fmt: skip
                    refused = await page.evaluate("url => call(url)", other.url + "/api/x")
                assert "error" in refused and "Failed to fetch" in refused["error"], refused
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
