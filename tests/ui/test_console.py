"""The web console end to end: headless Chromium against a real agent holding simulated data."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from playwright.sync_api import Page, expect

from tests.conftest import launch_agent
from tests.otlp_factory import genai_attributes, key_values, make_span, trace_request
from tests.ui.conftest import ConsoleAgent

RENDERED = "main[data-route]:not([aria-busy])"


def open_route(page: Page, agent: ConsoleAgent, route: str) -> None:
    page.goto(agent.url + route)
    page.wait_for_selector(RENDERED)


def serious_violations(page: Page) -> list[dict[str, Any]]:
    results = Axe().run(page)
    return [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_incident_list_shows_injected_incident(page: Page, console_agent: ConsoleAgent) -> None:
    """The list shows the injected cost regression with its service, kind and severity."""
    open_route(page, console_agent, "#/incidents")
    incident = console_agent.incident
    row = page.locator("table.incidents tbody tr", has=page.locator(
        f'a[href="#/incidents/{incident["id"]}"]'))
    expect(row).to_have_count(1)
    expect(row).to_contain_text(console_agent.scenario.service)
    expect(row).to_contain_text("cost_regression")
    expect(row).to_contain_text(incident["severity"])


def test_incident_filters_narrow_the_list(page: Page, console_agent: ConsoleAgent) -> None:
    """Choosing a kind keeps only incidents of that kind, and the filter is in the URL."""
    open_route(page, console_agent, "#/incidents")
    page.get_by_label("Kind").select_option("cost_regression")
    page.wait_for_url(re.compile(r"kind=cost_regression"))
    page.wait_for_selector(RENDERED)
    kinds = page.locator("table.incidents tbody tr td:nth-child(4)").all_inner_texts()
    assert kinds
    assert set(kinds) == {"cost_regression"}


def test_incident_detail_draws_chart_with_deploy_marker(
    page: Page, console_agent: ConsoleAgent
) -> None:
    """The detail page puts cause and rollback first and charts evidence with the deploy."""
    scenario = console_agent.scenario
    open_route(page, console_agent, f"#/incidents/{console_agent.incident['id']}")
    expect(page.locator("h1")).to_have_text(console_agent.incident["summary"])
    expect(page.locator(".verdict")).to_contain_text("Root cause")
    expect(page.locator(".rollback")).to_contain_text(
        f"Roll back {scenario.service} from {scenario.new_version} to {scenario.old_version}")
    chart = page.locator('#incident-charts figure[data-drawn="1"]').first
    expect(chart).to_be_visible()
    deploy = f"deploy {scenario.old_version} → {scenario.new_version}"
    expect(chart).to_have_attribute("data-markers", re.compile(re.escape(deploy)))
    expect(chart.locator("canvas")).to_have_count(1)
    expect(page.locator(".events li").first).to_be_visible()


def test_ack_changes_status(page: Page, console_agent: ConsoleAgent) -> None:
    """Read-only until actions are enabled; then Acknowledge changes the incident's status."""
    incident_id = console_agent.incident["id"]
    open_route(page, console_agent, f"#/incidents/{incident_id}")
    expect(page.locator("#ack")).to_have_count(0)
    page.get_by_role("button", name="Enable actions").click()
    page.locator("#ack").click()
    expect(page.locator("article.incident")).to_have_attribute("data-status", "acknowledged")
    expect(page.locator(".meta .badge-acknowledged")).to_be_visible()
    assert console_agent.live.get(f"/api/v1/incidents/{incident_id}").json()["status"] \
        == "acknowledged"


def test_trace_waterfall_renders(page: Page, console_agent: ConsoleAgent) -> None:
    """Search by service, open a trace: one row per span, bars, and per-span details."""
    service = console_agent.scenario.service
    open_route(page, console_agent, f"#/traces?service={service}&range=24h")
    page.locator("a.trace-link").first.click()
    page.wait_for_url(re.compile(r"#/traces/[0-9a-f]{32}$"))
    page.wait_for_selector(RENDERED)
    rows = page.locator("#waterfall tr.span-row")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 3
    widths = page.locator("#waterfall .bar").evaluate_all("els => els.map(e => e.offsetWidth)")
    assert all(w >= 2 for w in widths)
    chat = rows.filter(has_text="chat")
    chat.get_by_role("button").click()
    detail = page.locator("tr.span-detail:not([hidden])")
    expect(detail).to_contain_text("Tokens in / out")
    expect(detail).to_contain_text("Cost")
    expect(detail).to_contain_text("Energy")
    open_span_with_samples(page)


def test_span_events_and_logs_show_in_the_waterfall(page: Page,
                                                    console_agent: ConsoleAgent) -> None:
    """A span's event and its exception log record are listed in its detail."""
    trace_id, span_id = os.urandom(16), os.urandom(8)
    span = make_span(trace_id=trace_id, span_id=span_id, start_ns=time.time_ns() - 10**9,
                     name="chat gpt-4o", attributes=genai_attributes())
    span.events.append(Span.Event(time_unix_nano=span.start_time_unix_nano + 1000,
                                  name="gen_ai.choice"))
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    records.append(LogRecord(time_unix_nano=span.start_time_unix_nano + 2000, trace_id=trace_id,
                             span_id=span_id, severity_text="ERROR",
                             body=AnyValue(string_value="upstream failed"),
                             attributes=key_values({"exception.type": "TimeoutError"})))
    for path, body in (("/v1/traces", trace_request([span])), ("/v1/logs", logs)):
        httpx.post(console_agent.live.otlp_endpoint + path, content=body.SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"}).raise_for_status()
    open_route(page, console_agent, f"#/traces/{trace_id.hex()}")
    row = page.locator("#waterfall tr.span-row", has_text="chat gpt-4o")
    expect(row).to_contain_text("2 events")
    row.get_by_role("button").click()
    events = page.locator("tr.span-detail:not([hidden]) table", has_text="Events and logs")
    expect(events).to_contain_text("gen_ai.choice")
    expect(events).to_contain_text("upstream failed")
    expect(events).to_contain_text("TimeoutError")


def open_span_with_samples(page: Page) -> None:
    """A self-hosted chat span lists the GPU and serving samples correlated with it."""
    page.goto(page.url.split("#")[0] + "#/traces?service=support-bot&range=24h")
    page.wait_for_selector(RENDERED)
    page.locator("a.trace-link").first.click()
    page.wait_for_url(re.compile(r"#/traces/[0-9a-f]{32}$"))
    page.wait_for_selector(RENDERED)
    page.locator("#waterfall tr.span-row", has_text="chat").get_by_role("button").click()
    samples = page.locator("tr.span-detail:not([hidden]) table")
    expect(samples).to_contain_text("infrastructure")
    expect(samples).to_contain_text("gpu.temperature")


def test_service_overview_aligns_layers(page: Page, console_agent: ConsoleAgent) -> None:
    """The service page draws its layers' signals on one time range."""
    open_route(page, console_agent, f"#/services/{console_agent.scenario.service}?range=24h")
    expect(page.locator("h1")).to_contain_text(console_agent.scenario.service)
    expect(page.locator('figure[data-drawn="1"]').first).to_be_visible()
    # The scorer's feed closes the page: its table, or the message that nothing scored high.
    expect(page.locator("section[aria-labelledby=anomalies]")).to_contain_text(
        re.compile(r"Buckets scoring at or above|No series of this service scored"))


def test_cost_page_breaks_down_by_team(page: Page, console_agent: ConsoleAgent) -> None:
    """Cost & energy shows a total per team and draws USD, Wh and gCO2e over time."""
    open_route(page, console_agent, "#/cost?group_by=team&range=7d")
    expect(page.locator("table.totals tbody tr").first).to_be_visible()
    for chart in ("cost-usd", "cost-wh", "cost-co2e"):
        expect(page.locator(f'figure[data-chart="{chart}"][data-drawn="1"]')).to_be_visible()


@pytest.mark.parametrize("route", ["#/incidents", "incident", "#/traces", "#/cost"])
def test_pages_have_no_serious_accessibility_violations(
    page: Page, console_agent: ConsoleAgent, route: str
) -> None:
    """axe-core finds no serious or critical violations on the main pages."""
    if route == "incident":
        route = f"#/incidents/{console_agent.incident['id']}"
    open_route(page, console_agent, route)
    assert serious_violations(page) == []


def test_prompt_content_hidden_without_capture(page: Page, console_agent: ConsoleAgent) -> None:
    """With capture off the console says so and shows no content attributes."""
    open_route(page, console_agent, "#/traces")
    expect(page.locator("#agent-info")).to_contain_text("prompt capture off")


def test_token_is_asked_for_and_kept_in_session(page: Page, tmp_path: Any) -> None:
    """Against an agent with a token, the console asks for it, then loads data with it."""
    live = launch_agent(tmp_path, env={"STRATA_API_TOKEN": "s3cret-token"})
    try:
        page.goto(live.api_url + "/ui/#/incidents")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.get_by_label("Token", exact=True).fill("s3cret-token")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#agent-info")).to_contain_text("agent ")
        page.wait_for_selector(RENDERED)
        expect(page.locator("h1")).to_have_text("Incidents")
        stored = page.evaluate("sessionStorage.getItem('strata.token')")
        assert stored == "s3cret-token"
    finally:
        live.stop()
