"""Real browsers: a page from one origin calling routes through the proxy on another (what
CORS is for), and the dashboard at /_/, in Debian's Chromium (driven by Playwright) and
Debian's Firefox ESR (driven over Marionette). Skipped, saying why, where a browser or its
driver is not installed (.ci/run installs them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from aiohttp import web

from tests.helpers import (
    ON_SHARED_LOOP,
    WriteManifest,
    eventually,
    process_xml,
    running,
    worker_xml,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """One Chromium for the module's tests (a launch is 3-4 s of CPU, the suite's costliest
    start); each test opens a context of its own (cookies, storage), closed with it."""
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def own_page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a browser context of its own, closed after."""
    context = await browser.new_context()
    try:
        yield await context.new_page()
    finally:
        await context.close()


@contextlib.asynccontextmanager
async def page_server(html: str, at: str = "/") -> AsyncIterator[str]:
    """A web server of the test's own serving `html` at `at`; its origin."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get(at, page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # (a port of its own choosing)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@ON_SHARED_LOOP
async def test_a_page_on_another_origin_calls_a_route(
    write_manifest: WriteManifest, socket_dir: Path, chromium: Browser
) -> None:
    path = write_manifest(process_xml("api", "/api/*", mode="pipe-keepalive"))
    async with page_server(PAGE) as origin:
        async with running(path, socket_dir, cors=(origin,)) as run, own_page(chromium) as page:
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


# A page whose fetches each carry a new cookie: the browser repeats its other headers on a
# kept connection, so the proxy reads only the changed line again (http1.HeadReader).
COOKIE_PAGE = """<!doctype html><title>cookies</title><script>
async function calls(paths, count) {
  const seen = [];
  for (let i = 0; i < count; i++) {
    document.cookie = "n=" + i + "; path=/";
    for (const path of paths) {
      const reply = await fetch(path + "?i=" + i);
      const body = await reply.json();
      const cookie = body.headers.find(([name]) => name.toLowerCase() === "cookie");
      seen.push([path, i, reply.status, cookie ? cookie[1] : null]);
    }
  }
  return seen;
}
</script>"""


@ON_SHARED_LOOP
async def test_each_fetch_of_a_page_reaches_its_route_with_its_own_cookie(
    write_manifest: WriteManifest, socket_dir: Path, chromium: Browser
) -> None:
    web_child = process_xml("web", "/web/*", mode="passthrough", script="web_child.py",
                            extra="<strip_prefix>/web</strip_prefix>")  # fmt: skip
    async with page_server(COOKIE_PAGE, "/app/") as origin:
        app_route = (f"<process><id>app</id><upstream>{origin}</upstream><route>/app/*</route>"
                     "<communication_mode>passthrough</communication_mode></process>")  # fmt: skip
        path = write_manifest(process_xml("api", "/api/*", mode="pipe-keepalive"), web_child,
                              app_route)  # fmt: skip
        async with running(path, socket_dir) as run, own_page(chromium) as page:
            await page.goto(run.url + "/app/")
            seen = await page.evaluate("() => calls(['/api/x', '/web/echo'], 20)")
    assert len(seen) == 40
    for route, n, status, cookie in seen:
        assert (status, cookie) == (200, f"n={n}"), (route, n, seen)


@ON_SHARED_LOOP
async def test_the_dashboard_live(
    write_manifest: WriteManifest, socket_dir: Path, chromium: Browser
) -> None:
    """The dashboard at /_/ in Chromium: process rows as /_/status says, a request made with
    curl listed within a second and opened, Replay, a killed child's restart, a child's log
    line, and the Restart button."""
    # A worker: nothing is routed to it: its row says so.
    worker = worker_xml("queue", "-c", "import time; time.sleep(60)")
    path = write_manifest(process_xml("api", "/api/*"), process_xml("other", "/other/*"), worker)
    async with running(path, socket_dir) as run, own_page(chromium) as page:
        await page.goto(run.url + "/_/")
        await page.wait_for_selector('[data-process="api"][data-state="READY"]')
        async with run.http.get(run.url + "/_/status") as reply:
            status = await reply.json()
        for name, process in status["processes"].items():
            row = page.locator(f'[data-process="{name}"]')
            assert await row.get_attribute("data-state") == process["state"]
            pid = str(process["instances"][0]["pid"])
            assert pid in await row.inner_text()
        queue = await page.locator('[data-process="queue"]').inner_text()
        assert re.search(r"\bnone\s+-\s+READY\b", queue), queue
        # Every change of a row's state, as the page saw it.
        await page.evaluate("""() => { window.states = [];
            new MutationObserver((changes) => { for (const c of changes)
              if (c.attributeName === "data-state")
                window.states.push(c.target.getAttribute("data-process") + " " +
                                   c.target.getAttribute("data-state")); })
            .observe(document.getElementById("process-rows"),
                     {subtree: true, attributes: true, childList: true}); }""")

        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-D", "-", "-o", "/dev/null", "-H", "X-Tag: from-curl",
            "--data-binary", "hello from curl", run.url + "/api/log?x=1",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        head, _ = await curl.communicate()
        rid = re.search(rb"X-Request-Id: (\w+)", head).group(1).decode()  # type: ignore[union-attr]
        row = page.locator(f'[data-request-id="{rid}"]')
        await row.wait_for(timeout=1000)  # within a second
        await row.click()
        detail = page.locator("#detail")
        await detail.get_by_role("cell", name="from-curl").wait_for()  # a request header
        await detail.get_by_text("hello from curl", exact=True).wait_for()  # its body
        await detail.get_by_text(f"handling request {rid}").first.wait_for()  # its log line

        await detail.get_by_role("button", name="Replay").click()
        replay = detail.get_by_role("heading", name="Replay")
        await replay.wait_for()
        replayed = await detail.locator(".answers > div").nth(1).inner_text()
        new = re.search(r"([0-9a-f]{16})", replayed).group(1)  # type: ignore[union-attr]
        assert new != rid and "200" in replayed
        await page.locator(f'[data-request-id="{new}"]').wait_for(timeout=1000)

        await page.locator("#log-lines").get_by_text(f"handling request {new}").wait_for()

        old = run.child("api").pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await page.wait_for_function(
            """([old]) => { const row = document.querySelector('[data-process="api"]');
                 return row.dataset.state === "READY" && !row.innerText.includes(old); }""",
            arg=[str(old)],
        )  # fmt: skip
        seen = await page.evaluate("window.states")
        assert any(s.startswith("api ") and s != "api READY" for s in seen), seen

        other = run.child("other").pid
        await page.locator('[data-process="other"]').get_by_role("button", name="Restart").click()
        await page.get_by_text("other: restarted, READY").wait_for()
        assert run.child("other").pid != other


FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")


async def test_the_dashboard_in_firefox(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """The same page in Firefox: rows as /_/status says, a curl request listed and opened,
    Replay. Marionette's client blocks, so each step runs in a thread while the proxy runs
    on this loop."""
    if FIREFOX is None:
        pytest.skip("Debian's firefox-esr is not installed")
    marionette = pytest.importorskip("marionette_driver.marionette", reason="no marionette_driver")
    from marionette_driver import By, Wait

    # Port 0: Firefox listens where it can and writes the port in the profile (a port found
    # free beforehand could be another worker's by the time Firefox bound it).
    (tmp_path / "user.js").write_text('user_pref("marionette.port", 0);\n')
    firefox = await asyncio.create_subprocess_exec(
        FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(tmp_path),
        "about:blank", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    path = write_manifest(process_xml("api", "/api/*"))
    active = tmp_path / "MarionetteActivePort"

    def listening() -> bool:  # (or gone)
        done = active.exists() and active.read_text().strip().isdigit()
        return done or firefox.returncode is not None

    try:
        assert await eventually(listening, 60)
        assert firefox.returncode is None, f"Firefox exited ({firefox.returncode}) as it started"
        port = int(active.read_text())
        async with running(path, socket_dir) as run:
            driver = marionette.Marionette(host="127.0.0.1", port=port, startup_timeout=60)
            await asyncio.to_thread(driver.start_session)

            def wait(css: str, timeout: float = 10) -> list:  # type: ignore[type-arg]
                return Wait(driver, timeout=timeout).until(  # type: ignore[no-any-return]
                    lambda d: d.find_elements(By.CSS_SELECTOR, css)
                )

            try:
                await asyncio.to_thread(driver.navigate, run.url + "/_/")
                await asyncio.to_thread(wait, '[data-process="api"][data-state="READY"]')
                curl = await asyncio.create_subprocess_exec(
                    "curl", "-sS", "-D", "-", "-o", "/dev/null", "--data-binary", "from curl",
                    run.url + "/api/x", stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                head, _ = await curl.communicate()
                rid = re.search(rb"X-Request-Id: (\w+)", head).group(1).decode()  # type: ignore[union-attr]
                [row] = await asyncio.to_thread(wait, f'[data-request-id="{rid}"]', 1)
                cell = await asyncio.to_thread(row.find_element, By.CSS_SELECTOR, "td")
                await asyncio.to_thread(cell.click)  # WebDriver cannot click a <tr> itself
                await asyncio.to_thread(wait, "#detail pre.body")
                detail = await asyncio.to_thread(lambda: driver.find_element(By.ID, "detail").text)
                assert "from curl" in detail
                button = await asyncio.to_thread(
                    lambda: driver.find_element(By.XPATH, "//button[text()='Replay']")
                )
                await asyncio.to_thread(button.click)
                await asyncio.to_thread(wait, ".answers > div:nth-child(2) table")
                replayed = await asyncio.to_thread(
                    lambda: driver.find_element(By.CSS_SELECTOR, ".answers > div:nth-child(2)").text
                )
                new = re.search(r"([0-9a-f]{16})", replayed).group(1)  # type: ignore[union-attr]
                assert new != rid and "200" in replayed
            finally:
                await asyncio.to_thread(driver.delete_session)
    finally:
        with contextlib.suppress(ProcessLookupError):  # (it may have gone: said above)
            firefox.kill()
        await firefox.wait()
