"""The dashboard at /, end to end: a real hub and nats-server, driven in headless Chromium.

Needs the system Chromium and Playwright's Python package (never `playwright install`):
    apt-get install -y chromium && .venv/bin/pip install playwright
(HUB_TEST_CHROMIUM names another Chromium binary.) Without them the tests fail, never skip.
Screenshots of every test are saved in tests/artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as Nats

from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.payloads import publish_raw, publish_trade
from tests.support.waiting import eventually, wait_until_indexed
from tests.test_backtests import backtest

try:
    from playwright.async_api import (
        Browser,
        ConsoleMessage,
        Page,
        async_playwright,
        expect,
    )
except ImportError:  # reported as a failure by the browser fixture, never as a skip
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = Path(os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium"))  # Debian's package
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
INSTALL = ("apt-get update && apt-get install -y chromium, then .venv/bin/pip install playwright "
           "(never `playwright install`: the tests use the system browser)")
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HOSTILE = "<script>alert(1)</script><b>x</b>"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless system Chromium; missing pieces fail the test with the commands that install them."""
    if async_playwright is None:
        pytest.fail(f"Playwright's Python package is missing: {INSTALL}")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: {INSTALL}")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Watched:
    """A page with what it logged: console errors, uncaught exceptions, dialogs, requests."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


async def open_page(browser: Browser, hub: Hub, fragment: str = "") -> Watched:
    """Open the dashboard of HUB and wait until its WebSocket is live (unless a token is asked)."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: watched.requests.append(request.url))

    async def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await page.goto(str(hub.http.make_url("/")) + fragment)
    return watched


async def live(page: Page) -> None:
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}.png"), full_page=True)


def now() -> str:
    return datetime.now(UTC).isoformat()


def minutes_ago(minutes: float, base: datetime | None = None) -> str:
    return ((base or datetime.now(UTC)) - timedelta(minutes=minutes)).isoformat()


async def paired_trades(hub: Hub, count: int) -> list[dict[str, Any]]:
    """Wait until the hub has stored COUNT trades and its outcome worker has paired every one."""
    trades: list[dict[str, Any]] = []

    async def all_paired() -> bool:
        nonlocal trades
        trades = (await (await hub.http.get("/api/trades", params={"limit": 500})).json())["trades"]
        return len(trades) == count and all(t["outcome"]["status"] is not None for t in trades)

    await eventually(all_paired, timeout=20, what=f"{count} trades stored and paired")
    return trades


async def painted(canvas: Any) -> int:
    """How many pixels of a <canvas> are not transparent."""
    return int(await canvas.evaluate("""c => {
        const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
        return painted;
    }"""))


@pytest.fixture
async def hub(nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str) -> AsyncIterator[Hub]:
    """A hub on SQLite whose knowledge folder holds two of the shipped documents."""
    knowledge = tmp_path / "knowledge"
    for doc in ("technical/rsi.md", "risk/kelly-criterion.md"):
        (knowledge / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "knowledge" / doc, knowledge / doc)
    running = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url, knowledge_dir=knowledge))
    yield running
    await running.stop()


async def test_page_loads_everything_from_the_hub_without_errors(browser: Browser, hub: Hub) -> None:
    watched = await open_page(browser, hub)
    page = watched.page
    await live(page)
    for tab in ("Agents", "Backtests", "Knowledge", "Live"):
        await page.get_by_role("link", name=tab).click()
        await expect(page.locator(f"#{tab.lower()}")).to_be_visible()
    await expect(page.locator("#live-empty")).to_be_visible()
    await shot(page, "empty")
    response = await hub.http.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    origin = str(hub.http.make_url("/")).rstrip("/")
    assert watched.requests and all(url.startswith(origin) for url in watched.requests), watched.requests
    assert any(url.endswith("/static/vendor/uPlot.iife.min.js") for url in watched.requests)
    assert watched.errors == []


async def test_a_published_trade_is_shown_within_a_second(browser: Browser, hub: Hub, nc: Nats) -> None:
    watched = await open_page(browser, hub)
    page = watched.page
    await live(page)
    sent = await publish_trade(nc, asset="ETH", action="SELL", timestamp=now(),
                               reasoning="funding extreme: fading the crowd", confidence=64)
    await expect(page.get_by_text(sent["reasoning"])).to_be_visible(timeout=1000)
    row = page.locator("#live-rows tr").first
    await expect(row).to_contain_text("ETH")
    await expect(row).to_contain_text("SELL")
    await shot(page, "live_trade")
    assert watched.errors == []


async def test_asset_and_action_filters(browser: Browser, hub: Hub, nc: Nats) -> None:
    for asset, action in (("BTC", "BUY"), ("ETH", "BUY"), ("BTC", "SELL")):
        await publish_trade(nc, asset=asset, action=action, timestamp=now(), reasoning=f"{asset} {action} call")
    watched = await open_page(browser, hub)
    page = watched.page
    await live(page)
    await expect(page.locator("#live-rows tr")).to_have_count(3)
    await page.fill("#live-asset", "btc")
    await expect(page.locator("#live-rows tr")).to_have_count(2)
    await page.select_option("#live-action", "SELL")
    await expect(page.locator("#live-rows tr")).to_have_count(1)
    await expect(page.get_by_text("BTC SELL call")).to_be_visible()
    await publish_trade(nc, asset="ETH", action="SELL", timestamp=now(), reasoning="ETH SELL call")
    sent = await publish_trade(nc, asset="BTC", action="SELL", timestamp=now(), reasoning="second BTC SELL")
    await expect(page.get_by_text(sent["reasoning"])).to_be_visible()
    await expect(page.locator("#live-rows tr")).to_have_count(2)  # the ETH one stayed out
    await shot(page, "filters")
    assert watched.errors == []


async def test_text_from_bots_is_rendered_as_text(browser: Browser, hub: Hub, nc: Nats) -> None:
    watched = await open_page(browser, hub)
    page = watched.page
    await live(page)
    await publish_trade(nc, timestamp=now(), reasoning=HOSTILE, strategy="<img src=x onerror=alert(2)>",
                        source="<i>bot</i>")
    await expect(page.get_by_text(HOSTILE, exact=True)).to_be_visible(timeout=1000)
    await expect(page.get_by_text("<img src=x onerror=alert(2)>", exact=False)).to_be_visible()
    rows = page.locator("#live-rows")
    assert await rows.locator("b, i, img, script").count() == 0
    await shot(page, "hostile_text")
    assert watched.dialogs == []
    assert watched.errors == []


async def test_a_new_backtest_appears_and_its_chart_draws(browser: Browser, hub: Hub, nc: Nats) -> None:
    watched = await open_page(browser, hub, "#backtests")
    page = watched.page
    await live(page)
    await expect(page.locator("#bt-empty")).to_be_visible()
    event = backtest("bt-dash", strategy="dash <b>strategy</b>")
    event["trades"][0]["reasoning"] = "long reasoning " + "because of the trend; " * 20 + HOSTILE
    await publish_raw(nc, "backtests.completed", event)
    row = page.locator("#bt-rows tr", has_text="dash <b>strategy</b>")
    await expect(row).to_be_visible(timeout=10_000)  # without a reload
    await expect(row).to_contain_text("7.20%")
    await row.click()
    await expect(page.locator("#bt-detail h3")).to_contain_text("dash <b>strategy</b>")
    canvas = page.locator("#bt-chart .uplot canvas").first
    await expect(canvas).to_be_visible()
    drawn = await painted(canvas)
    assert drawn > 500, f"the equity chart drew only {drawn} pixels"
    assert await page.locator("#bt-chart .uplot").count() == 2  # equity and drawdown
    await expect(page.locator("#bt-chart")).to_contain_text("rebased")
    await expect(page.locator(".metrics-wrap")).to_contain_text("Sharpe")
    await expect(page.locator(".conventions summary")).to_contain_text("periods per year")
    trades = page.locator("#bt-trades tbody tr")
    await expect(trades).to_have_count(4)
    await expect(trades.nth(1)).to_contain_text("97.00")  # the first exit's PnL, net of fees
    await expect(page.get_by_text("stop <b>hit</b>", exact=True)).to_be_visible()
    first = trades.first
    await expect(first.locator(".long")).to_be_hidden()
    await first.get_by_role("button", name="more").click()
    await expect(first.locator(".long")).to_have_text(event["trades"][0]["reasoning"])
    assert await page.locator("#backtests").locator("b, script").count() == 0
    await page.locator("#bt-chart button", has_text="All").click()
    await shot(page, "backtest")
    assert watched.dialogs == []
    assert watched.errors == []


async def test_backtests_table_sorts_and_pages(browser: Browser, hub: Hub, nc: Nats) -> None:
    curves = {f"bt-{i}": [1000, 1000 + 10 * i, 1000 + 20 * i, 1000, 1000 + 30 * i, 1000 + 5 * i] for i in range(23)}
    for event_id, values in curves.items():
        event = backtest(event_id, strategy=event_id)
        for point, value in zip(event["equity_curve"], values):
            point["value"] = value
        await publish_raw(nc, "backtests.completed", event)

    async def all_stored() -> bool:
        body = await (await hub.http.get("/api/backtests?limit=1")).json()
        return bool(body["total"] == 23)

    await eventually(all_stored, what="23 backtests stored")
    watched = await open_page(browser, hub, "#backtests")
    page = watched.page
    await expect(page.locator("#bt-rows tr")).to_have_count(20)
    await expect(page.locator("#bt-page")).to_have_text("1–20 of 23")
    await page.click("#bt-next")
    await expect(page.locator("#bt-rows tr")).to_have_count(3)
    await page.click("th[data-sort=total_return]")  # best first, back on page one
    await expect(page.locator("#bt-rows tr").first).to_contain_text("bt-22")
    await page.click("th[data-sort=total_return]")
    await expect(page.locator("#bt-rows tr").first).to_contain_text("bt-0")
    await expect(page.locator("th[data-sort=total_return]")).to_have_attribute("aria-sort", "ascending")
    await shot(page, "backtests_sorted")
    assert watched.errors == []


async def test_knowledge_search_shows_ranked_chunks(browser: Browser, hub: Hub) -> None:
    await wait_until_indexed(hub, 2, timeout=120)
    watched = await open_page(browser, hub, "#knowledge")
    page = watched.page
    await expect(page.locator("#kb-domain option[value=risk]")).to_contain_text("risk (1 file,")
    await page.fill("#kb-q", "what RSI level means oversold")
    await page.click("#kb-form button[type=submit]")
    results = page.locator("#kb-results .result")
    await expect(results.first).to_be_visible()
    await expect(results.first.locator(".source")).to_contain_text("technical/rsi.md")
    await expect(results.first).to_contain_text("Relative Strength Index")
    await page.select_option("#kb-domain", "risk")
    await page.click("#kb-form button[type=submit]")
    await expect(results.first.locator(".source")).to_contain_text("risk/kelly-criterion.md")
    for source in await results.locator(".source code").all_text_contents():
        assert source.startswith("risk/")
    await shot(page, "knowledge")
    assert watched.errors == []


async def test_a_reconnect_fills_the_gap_with_each_trade_once(browser: Browser, hub: Hub, nc: Nats) -> None:
    before = await publish_trade(nc, timestamp=now(), reasoning="before the gap")
    watched = await open_page(browser, hub)
    page = watched.page
    await live(page)
    await expect(page.get_by_text(before["reasoning"])).to_be_visible()
    await page.evaluate("window.__hub.settled()")  # the catch-up started on open may still be running

    await page.evaluate("window.__hub.stream.pause()")  # the page stays offline until resume()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
    gap = [await publish_trade(nc, timestamp=now(), reasoning=f"during the gap {i}") for i in range(3)]

    async def stored() -> bool:
        return len((await (await hub.http.get("/api/trades")).json())["trades"]) == 4

    await eventually(stored, what="the gap's trades stored")
    assert await page.get_by_text("during the gap").count() == 0
    await page.evaluate("window.__hub.stream.resume()")
    await live(page)
    for sent in gap:
        await expect(page.get_by_text(sent["reasoning"], exact=True)).to_have_count(1)

    # The socket dropping by itself: the page reconnects with backoff, and whatever was
    # stored meanwhile (over the socket or the REST catch-up) is shown once.
    await page.evaluate("window.__hub.ws.close()")
    dropped = [await publish_trade(nc, timestamp=now(), reasoning=f"while reconnecting {i}") for i in range(3)]
    for sent in dropped:
        await expect(page.get_by_text(sent["reasoning"], exact=True)).to_have_count(1, timeout=10_000)
    await live(page)
    ids = await page.evaluate("window.__hub.shownIds()")
    assert len(ids) == len(set(ids)) == 7
    await expect(page.locator("#live-rows tr")).to_have_count(7)
    await shot(page, "gap_filled")
    assert watched.errors == []


async def test_a_hub_with_a_token_asks_for_it_once(
    browser: Browser, nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str
) -> None:
    guarded = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url, api_token="s3cret-token"))
    try:
        await publish_trade(nc, timestamp=now(), reasoning="seen with the token")
        watched = await open_page(browser, guarded)
        page = watched.page
        dialog = page.locator("#token-dialog")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#token-error")).to_be_hidden()
        await shot(page, "token_prompt")
        await page.fill("#token-input", "s3cret-token")
        await page.press("#token-input", "Enter")
        await expect(dialog).to_be_hidden()
        await expect(page.get_by_text("seen with the token")).to_be_visible()
        await live(page)  # the WebSocket took the token too
        sent = await publish_trade(nc, timestamp=now(), reasoning="over the socket with the token")
        await expect(page.get_by_text(sent["reasoning"])).to_be_visible(timeout=1000)

        await page.reload()  # the stored token is used, nothing asked
        await live(page)
        await expect(dialog).to_be_hidden()

        await page.evaluate("localStorage.setItem('tradeHub.apiToken', 'stale')")
        await page.reload()  # a refused token is asked for again
        await expect(dialog).to_be_visible()
        await expect(page.locator("#token-error")).to_be_visible()
        await page.fill("#token-input", "s3cret-token")
        await page.press("#token-input", "Enter")
        await live(page)
        await expect(page.get_by_text("seen with the token")).to_be_visible()
        assert watched.dialogs == []
        assert [e for e in watched.errors if "401" not in e] == []
    finally:
        await guarded.stop()


ALPHA, BETA = ("alpha-bot", "momentum"), ("beta-bot", "fade <b>it</b>")


async def publish_two_agents(nc: Nats) -> int:
    """Alpha: ten round trips over ten hours, confidence rising with the PnL (-2.5 .. +6.5, 20 in
    all). Beta: a loss of 10, a win of 4, and a long of 0.5 ETH still open. Returns the trades sent."""
    sent = 0
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # each exit at :30 of its own hour
    source, strategy = ALPHA
    for i in range(10):
        start = 600 - 60 * i
        await publish_trade(nc, source=source, strategy=strategy, asset="BTC", action="BUY", price=100.0,
                            quantity=1.0, confidence=10 + 9 * i, timestamp=minutes_ago(start, hour),
                            reasoning=f"alpha entry {i}")
        await publish_trade(nc, source=source, strategy=strategy, asset="BTC", action="SELL",
                            price=100.0 + i - 2.5, quantity=1.0, confidence=50,
                            timestamp=minutes_ago(start - 30, hour), reasoning=f"alpha exit {i}")
        sent += 2
    source, strategy = BETA
    for minutes, action, price, quantity, confidence in (
        (300, "BUY", 200.0, 2.0, 80), (280, "SELL", 195.0, 2.0, 50),  # -10
        (200, "BUY", 200.0, 1.0, 40), (180, "SELL", 204.0, 1.0, 50),  # +4
        (100, "BUY", 210.0, 0.5, 60),  # still open
    ):
        await publish_trade(nc, source=source, strategy=strategy, asset="ETH", action=action, price=price,
                            quantity=quantity, confidence=confidence, timestamp=minutes_ago(minutes, hour),
                            reasoning=f"beta {action} at {price}")
        sent += 1
    return sent


async def test_agents_view_ranks_sorts_and_explains_each_agent(browser: Browser, hub: Hub, nc: Nats) -> None:
    await paired_trades(hub, await publish_two_agents(nc))
    performance = (await (await hub.http.get("/api/performance")).json())["groups"]
    assert [(g["source"], g["strategy"], g["realized_pnl"]) for g in performance] == [
        (*ALPHA, pytest.approx(20.0)), (*BETA, pytest.approx(-6.0))]

    watched = await open_page(browser, hub, "#agents")
    page = watched.page
    await live(page)
    rows = page.locator("#ag-rows tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("alpha-bot")
    await expect(rows.nth(0).locator("td.pnl")).to_have_text("+20.00")
    await expect(rows.nth(0).locator("td.pnl")).to_have_class(re.compile(r"\bpos\b"))
    await expect(rows.nth(0)).to_contain_text("70.0%")  # 7 of 10 exits won
    await expect(rows.nth(1)).to_contain_text("fade <b>it</b>")
    await expect(rows.nth(1).locator("td.pnl")).to_have_text("-6.00")
    await expect(rows.nth(1).locator("td.pnl")).to_have_class(re.compile(r"\bneg\b"))

    pnl_header = page.locator("#ag-table th[data-sort=realized_pnl]")
    await expect(pnl_header).to_have_attribute("aria-sort", "descending")
    await pnl_header.click()
    await expect(pnl_header).to_have_attribute("aria-sort", "ascending")
    await expect(rows.first).to_contain_text("beta-bot")
    await page.click("#ag-table th[data-sort=source]")  # names: A to Z first
    await expect(rows.first).to_contain_text("alpha-bot")
    await page.click("#ag-table th[data-sort=source]")
    await expect(rows.first).to_contain_text("beta-bot")
    await page.click("#ag-table th[data-sort=open_positions]")  # most first
    await expect(rows.first).to_contain_text("beta-bot")
    await page.click("#ag-table th[data-sort=win_rate]")
    await expect(rows.first).to_contain_text("alpha-bot")

    await rows.filter(has_text="alpha-bot").click()
    detail = page.locator("#ag-detail")
    await expect(detail.locator("h3")).to_have_text("alpha-bot / momentum")
    canvas = page.locator("#ag-pnl .uplot canvas").first
    await expect(canvas).to_be_visible()
    assert await painted(canvas) > 500, "the PnL chart drew (almost) nothing"
    await expect(page.locator("#ag-positions")).to_contain_text("No open positions")
    await expect(page.locator("#ag-pnl")).to_have_attribute("data-points", "10")  # hourly: ten exits, ten hours
    await page.click("#ag-interval button[data-interval='1d']")
    await expect(page.locator("#ag-interval button[data-interval='1d']")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#ag-pnl .uplot canvas").first).to_be_visible()
    await page.click("#ag-interval button[data-interval='1h']")
    await expect(page.locator("#ag-pnl")).to_have_attribute("data-points", "10")

    calibration = await (await hub.http.get(
        "/api/calibration", params={"source": ALPHA[0], "strategy": ALPHA[1]})).json()
    assert calibration["n"] == 10 and calibration["verdict"].startswith("higher confidence wins more often")
    judged = [b for b in calibration["bins"] if b["n"]]
    chart = page.locator("#ag-calibration svg.calibration-chart")
    await expect(chart).to_be_visible()
    await expect(chart.locator("rect.bar")).to_have_count(len(judged))
    await expect(chart.locator("line.diagonal")).to_have_count(1)
    for b in judged:
        await expect(chart.locator(f'.bin[data-low="{b["low"]:g}"] text.count')).to_have_text(f'{b["wins"]}/{b["n"]}')
    await expect(page.locator("#ag-verdict")).to_have_text(calibration["verdict"])
    heights = await chart.locator("rect.bar").evaluate_all("bars => bars.map(b => b.getBBox().height)")
    assert heights[-1] > heights[0] > 0  # the top bin won every time; the lowest never (a stub)
    await shot(page, "agents")

    await rows.filter(has_text="beta-bot").click()
    await expect(detail.locator("h3")).to_have_text("beta-bot / fade <b>it</b>")
    position = page.locator("#ag-positions-table tbody tr")
    await expect(position).to_have_count(1)
    await expect(position).to_contain_text("ETH")
    await expect(position).to_contain_text("long")
    await expect(page.locator("#ag-verdict")).to_contain_text("too few closed decisions")

    # Live: closing beta's position moves its row and its detail without a reload.
    await publish_trade(nc, source=BETA[0], strategy=BETA[1], asset="ETH", action="SELL", price=220.0,
                        quantity=0.5, confidence=50, timestamp=now(), reasoning="beta closes")
    beta = rows.filter(has_text="beta-bot")
    await expect(beta.locator("td.pnl")).to_have_text("-1.00", timeout=10_000)  # -6 + 0.5 × 10
    await expect(page.locator("#ag-positions")).to_contain_text("No open positions")
    assert await page.locator("#agents").locator("b, script").count() == 0
    await shot(page, "agents_beta")
    assert watched.dialogs == []
    assert watched.errors == []


async def test_live_rows_show_each_outcome_in_place(browser: Browser, hub: Hub, nc: Nats) -> None:
    watched = await open_page(browser, hub)
    page = watched.page
    await live(page)
    trades = [("BUY", 100.0, "win entry"), ("SELL", 112.0, "win exit"), ("BUY", 100.0, "loss entry"),
              ("SELL", 95.0, "loss exit"), ("BUY", 101.0, "still open")]
    for minutes, (action, price, reasoning) in zip((50, 40, 30, 20, 10), trades):
        await publish_trade(nc, source="live-bot", strategy="scalp", asset="SOL", action=action, price=price,
                            quantity=1.0, confidence=70, timestamp=minutes_ago(minutes), reasoning=reasoning)

    def row(reasoning: str) -> Any:
        return page.locator("#live-rows tr", has_text=reasoning)

    for _, _, reasoning in trades:
        await expect(row(reasoning)).to_be_visible()
    await row("win exit").evaluate("tr => { tr.dataset.marked = 'yes'; }")  # to tell it was not replaced
    cell = row("win exit").locator("td.outcome-cell")
    await expect(cell).to_have_text("exit +12.00", timeout=10_000)
    await expect(cell.locator(".pnl")).to_have_class(re.compile(r"\bpos\b"))
    await expect(row("win entry").locator("td.outcome-cell")).to_have_text("closed +12.00")
    await expect(row("loss exit").locator("td.outcome-cell")).to_have_text("exit -5.00")
    await expect(row("loss exit").locator(".pnl")).to_have_class(re.compile(r"\bneg\b"))
    await expect(row("still open").locator("td.outcome-cell")).to_have_text("open")
    await expect(row("win exit")).to_have_attribute("data-marked", "yes")
    await shot(page, "live_outcomes")

    stored = await paired_trades(hub, len(trades))
    assert {t["reasoning"]: t["outcome"]["realized_pnl"] for t in stored}["win exit"] == pytest.approx(12.0)
    await page.reload()  # from the REST API this time
    await live(page)
    await expect(row("win exit").locator("td.outcome-cell")).to_have_text("exit +12.00")
    await expect(row("still open").locator("td.outcome-cell")).to_have_text("open")
    assert watched.errors == []


OVERSOLD = "RSI(14) at 24 on the four-hour chart, deeply oversold; buying the bounce"
AGAIN = "RSI(14) at 26 on the hourly, oversold again: <b>buying</b> the dip"
DECISIONS = [  # source, asset, action, price, minutes ago, reasoning
    ("memory-bot", "BTC", "BUY", 100.0, 50, OVERSOLD),  # closed +10 by the next
    ("memory-bot", "BTC", "SELL", 110.0, 40, "Taking profit into resistance after the oversold bounce"),
    ("other-bot", "ETH", "BUY", 100.0, 30, "Funding turned sharply negative while open interest climbs"),
    ("other-bot", "ETH", "SELL", 95.0, 20, "Stopped out: the short squeeze never came"),  # -5 on both
    ("memory-bot", "BTC", "BUY", 100.0, 10, AGAIN),  # still open
]


async def api(hub: Hub, path: str, **params: Any) -> dict[str, Any]:
    response = await hub.http.get(path, params={k: str(v) for k, v in params.items() if v != ""})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def searchable(hub: Hub, live_trades: int, backtests: bool = False) -> None:
    """Wait until LIVE_TRADES trades are stored and searchable by meaning (and, with BACKTESTS,
    a backtest's trades: the index lag counts live trades only)."""
    async def ready() -> bool:
        health = await api(hub, "/api/health")
        stored = await api(hub, "/api/trades", limit=500)
        if len(stored["trades"]) != live_trades or health["reasoning"]["detail"]["trades_behind"] != 0:
            return False
        return not backtests or bool((await api(hub, "/api/trades/search", q="RSI", kind="backtest"))["results"])

    await eventually(ready, timeout=120, what=f"{live_trades} trades searchable by meaning")


async def ids_shown(rows: Any) -> list[int]:
    return [int(i) for i in await rows.evaluate_all("trs => trs.map(tr => tr.dataset.id)")]


async def test_decision_search_ranks_filters_and_opens_similar_decisions(
    browser: Browser, hub: Hub, nc: Nats
) -> None:
    await publish_raw(nc, "backtests.completed", backtest("bt-memory"))
    for source, asset, action, price, minutes, reasoning in DECISIONS:
        await publish_trade(nc, source=source, strategy="swing", asset=asset, action=action, price=price,
                            quantity=1.0, confidence=60, timestamp=minutes_ago(minutes), reasoning=reasoning)
    by_text = {t["reasoning"]: t for t in await paired_trades(hub, len(DECISIONS))}
    await searchable(hub, len(DECISIONS), backtests=True)

    watched = await open_page(browser, hub)
    page = watched.page
    await live(page)
    await expect(page.locator("#live-rows tr")).to_have_count(len(DECISIONS))
    query = "oversold RSI bounce"
    rows = page.locator("#dm-table tbody tr")

    async def shows(outcome: str = "", kind: str = "") -> list[dict[str, Any]]:
        """The page lists what the API answers for the same question, in its order."""
        expected = (await api(hub, "/api/trades/search", q=query, k=20, outcome=outcome, kind=kind))["results"]
        assert expected, (outcome, kind)
        box = page.locator("#dm-results")
        await expect(box).to_have_attribute("data-outcome", outcome)
        await expect(box).to_have_attribute("data-kind", kind)
        await expect(box).not_to_have_attribute("aria-busy", "true")
        assert await ids_shown(rows) == [r["id"] for r in expected]
        return list(expected)

    await page.fill("#dm-q", query)
    await page.click("#dm-form button[type=submit]")
    ranked = await shows()
    assert "oversold" in ranked[0]["reasoning"]
    assert {r["kind"] for r in ranked} == {"live", "backtest"}
    await expect(page.locator("#dm-info")).to_contain_text(f"{len(ranked)} decisions, best first")
    await expect(page.locator("#dm-lag")).to_be_hidden()
    exit_row = rows.filter(has_text="Taking profit into resistance")
    await expect(exit_row.locator("td.outcome-cell")).to_have_text("exit")
    await expect(exit_row.locator("td.pnl-cell")).to_have_text("+10.00")
    await expect(exit_row).to_contain_text("memory-bot / swing")

    await page.select_option("#dm-kind", "live")  # a filter changed: searched again
    await page.select_option("#dm-outcome", "win")
    wins = await shows("win", "live")
    assert sorted(r["id"] for r in wins) == sorted(by_text[t]["id"] for t in (OVERSOLD, DECISIONS[1][5]))
    for cell in await rows.locator("td.pnl-cell").all():
        await expect(cell).to_have_text("+10.00")
        await expect(cell.locator(".pnl")).to_have_class(re.compile(r"\bpos\b"))
    await page.select_option("#dm-outcome", "loss")
    assert {r["source"] for r in await shows("loss", "live")} == {"other-bot"}
    for cell in await rows.locator("td.pnl-cell").all():
        await expect(cell).to_have_text("-5.00")
    await page.select_option("#dm-outcome", "open")
    [still_open] = await shows("open", "live")
    assert still_open["id"] == by_text[AGAIN]["id"]
    await expect(rows.first.locator("td.reasoning")).to_have_text(AGAIN)  # as text
    assert await page.locator("#live").locator("b, script").count() == 0
    await shot(page, "decision_search")

    # Selecting a result opens its detail: the earlier trades reasoned most like it.
    await rows.first.click()
    dialog = page.locator("#trade-dialog")
    await expect(dialog).to_be_visible()
    await expect(page).to_have_url(re.compile(rf"#live/{still_open['id']}$"))
    await expect(dialog.locator("#td-reasoning")).to_have_text(AGAIN)
    await expect(dialog.locator("#td-title")).to_contain_text("BUY BTC")
    similar = page.locator("#td-similar-table tbody tr")
    everyone = await api(hub, f"/api/trades/{still_open['id']}/similar", k=20, scope="all")
    assert everyone["summary"] == {"n": 4, "closed": 4, "wins": 2, "win_rate": 0.5, "mean_pnl": 2.5}
    await expect(similar).to_have_count(4)
    assert await ids_shown(similar) == [r["id"] for r in everyone["results"]]
    await expect(dialog.locator("#td-summary")).to_have_text(
        "The 4 earlier trades reasoned most like this one: won 50% of 4 closed, mean PnL +2.50.")
    await expect(dialog.locator("#td-scope button[data-scope=all]")).to_have_attribute("aria-pressed", "true")
    assert await dialog.locator("b, script").count() == 0
    await shot(page, "trade_detail")

    await dialog.locator("#td-scope button[data-scope=same_source]").click()
    own = await api(hub, f"/api/trades/{still_open['id']}/similar", k=20, scope="same_source")
    assert {r["source"] for r in own["results"]} == {"memory-bot"} and own["summary"]["n"] == 2
    await expect(similar).to_have_count(2)
    assert await ids_shown(similar) == [r["id"] for r in own["results"]]
    await expect(dialog.locator("#td-summary")).to_have_text(
        "The 2 earlier trades from the same source reasoned most like this one: "
        "won 100% of 2 closed, mean PnL +10.00.")

    # A similar decision opens in its turn; the first trade has none before it.
    first = by_text[OVERSOLD]["id"]
    await similar.filter(has_text=OVERSOLD).click()
    await expect(page).to_have_url(re.compile(rf"#live/{first}$"))
    await expect(dialog.locator("#td-reasoning")).to_have_text(OVERSOLD)
    await expect(dialog.locator("#td-summary")).to_have_text(
        "No earlier trade from the same source was reasoned like this one.")
    await expect(similar).to_have_count(0)
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(page).to_have_url(re.compile(r"#live$"))

    # A live row opens the same detail.
    await page.locator("#live-rows tr", has_text="Stopped out").click()
    await expect(dialog.locator("#td-reasoning")).to_have_text(DECISIONS[3][5])
    await expect(dialog.locator("#td-trade")).to_contain_text("exit -5.00")
    await dialog.get_by_role("button", name="close").click()
    await expect(dialog).to_be_hidden()

    # A backtest's decision opens its backtest.
    await page.select_option("#dm-outcome", "")
    await page.select_option("#dm-kind", "backtest")
    tested = await shows("", "backtest")
    assert {r["kind"] for r in tested} == {"backtest"}
    await expect(rows.first).to_contain_text(f"backtest #{tested[0]['backtest_id']}")
    await rows.first.click()
    await expect(page).to_have_url(re.compile(rf"#backtests/{tested[0]['backtest_id']}$"))
    await expect(page.locator("#bt-detail h3")).to_contain_text("rsi_reversion")
    assert watched.dialogs == []
    assert watched.errors == []


async def test_decision_search_says_how_far_the_index_is_behind(browser: Browser, hub: Hub, nc: Nats) -> None:
    await publish_trade(nc, timestamp=now(), reasoning=OVERSOLD)
    await searchable(hub, 1)
    watched = await open_page(browser, hub)
    page = watched.page
    await live(page)

    async def behind(route: Any) -> None:  # as if three trades were still waiting to be embedded
        response = await route.fetch()
        body = await response.json()
        body["index"] = {"trades_behind": 3, "seconds_behind": 12.5}
        await route.fulfill(response=response, json=body)

    await page.route(re.compile(r"/api/trades/search\?"), behind)
    await page.fill("#dm-q", "deeply oversold")
    await page.press("#dm-q", "Enter")
    await expect(page.locator("#dm-table tbody tr")).to_have_count(1)
    await expect(page.locator("#dm-lag")).to_have_text("3 trades not yet searchable by meaning.")
    await page.click("#dm-clear")
    await expect(page.locator("#dm-results table")).to_have_count(0)
    await expect(page.locator("#dm-lag")).to_be_hidden()
    await expect(page.locator("#dm-q")).to_have_value("")
    assert watched.errors == []

