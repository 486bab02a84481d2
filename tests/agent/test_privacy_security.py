"""Prompt content never stored by default (P1); token auth on every route (S3, S4)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveAgent, launch_agent
from tests.otlp_factory import genai_attributes, make_span, trace_request

CANARY = "CANARY-7f3a9c-do-not-store"
PB = {"Content-Type": "application/x-protobuf"}


def content_spans():
    """Spans carrying the canary under every content key family Strata knows."""
    attributes = {
        **genai_attributes(),
        "gen_ai.input.messages": f'[{{"role":"user","content":"{CANARY}"}}]',
        "gen_ai.output.messages": CANARY,
        "gen_ai.prompt.0.content": CANARY,            # OpenLLMetry
        "gen_ai.completion.0.content": CANARY,
        "llm.input_messages.0.message.content": CANARY,  # OpenInference
        "input.value": CANARY,
        "output.value": CANARY,
        "traceloop.entity.input": CANARY,
        "langfuse.observation.input": CANARY,
        "gen_ai.tool.call.arguments": CANARY,
        "app.blob": '{"role": "user", "content": "' + CANARY + '"}' + " " * 1100,  # heuristic
    }
    return [make_span(attributes=attributes) for _ in range(5)]


def test_content_is_redacted_before_the_first_write(live_agent: LiveAgent) -> None:
    """No canary in API answers nor in the DuckDB file and WAL bytes; length and hash kept."""
    reply = httpx.post(live_agent.otlp_endpoint + "/v1/traces",
                       content=trace_request(content_spans()).SerializeToString(), headers=PB)
    assert reply.status_code == 200
    traces = live_agent.get("/api/v1/traces").json()["traces"]
    detail = live_agent.get(f"/api/v1/traces/{traces[0]['trace_id']}")
    assert CANARY not in detail.text
    kept = detail.json()["spans"][0]["attributes"]["gen_ai.output.messages"]
    assert kept.startswith(f"[redacted len={len(CANARY)} sha256=")
    assert live_agent.stop() == 0
    for path in live_agent.db.parent.iterdir():
        if path.name.startswith(live_agent.db.name):
            assert CANARY.encode() not in path.read_bytes(), path.name
    assert CANARY not in live_agent.log.read_text()


def test_content_kept_when_capture_is_on(tmp_path) -> None:
    """With capture on, content is stored (truncated to 16 KiB)."""
    agent = launch_agent(tmp_path, env={"STRATA_CAPTURE_CONTENT": "true"})
    try:
        httpx.post(agent.otlp_endpoint + "/v1/traces",
                   content=trace_request(content_spans()[:1]).SerializeToString(), headers=PB)
        trace_id = agent.get("/api/v1/traces").json()["traces"][0]["trace_id"]
        attributes = agent.get(f"/api/v1/traces/{trace_id}").json()["spans"][0]["attributes"]
        assert attributes["gen_ai.output.messages"] == CANARY
    finally:
        agent.stop()


TOKEN = "s3cret-token-for-tests"  # noqa: S105 - a test token


@pytest.fixture(name="token_agent")
def token_agent_fixture(tmp_path):
    agent = launch_agent(tmp_path, env={"STRATA_API_TOKEN": TOKEN})
    yield agent
    agent.stop()


def test_every_route_needs_the_token(token_agent: LiveAgent) -> None:
    """Every API route answers 401 + WWW-Authenticate without the right bearer token (S3)."""
    from strata.agent.api.app import create_app
    from strata.agent.config import Settings
    from strata.agent.runner import Agent

    probe = Agent(Settings(db=str(token_agent.db.parent / "probe.duckdb")))
    app = create_app(probe)
    paths = sorted({*app.openapi()["paths"], "/docs", "/openapi.json", "/redoc"})
    probe.close()
    assert "/api/v1/health" in paths
    assert "/docs" in paths
    bad_headers = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                   {"Authorization": "Bearer"}]
    for path in paths:
        if path == "/healthz":
            continue
        base = token_agent.otlp_endpoint if path.startswith("/v1/") else token_agent.api_url
        url = base + path.replace("{", "x").replace("}", "")
        for headers in bad_headers:
            reply = httpx.request("GET", url, headers=headers)
            assert reply.status_code == 401, (path, headers, reply.status_code)
            assert reply.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in reply.text
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(token_agent.api_url + "/api/v1/health", headers=good).status_code == 200
    assert httpx.get(token_agent.api_url + "/healthz").json() == {"status": "ok"}
    # The console's static page loads without a token (it holds no data) and then asks.
    assert httpx.get(token_agent.api_url + "/ui/").status_code == 200
    reply = httpx.post(token_agent.otlp_endpoint + "/v1/traces", headers={**PB, **good},
                       content=trace_request([make_span()]).SerializeToString())
    assert reply.status_code == 200
    token_agent.stop()
    assert TOKEN not in token_agent.log.read_text()


def test_default_bind_is_loopback_only(live_agent: LiveAgent) -> None:
    """With no host configured, both listening sockets are on 127.0.0.1 only (S1)."""
    ports = {int(live_agent.otlp_endpoint.rsplit(":", 1)[1]),
             int(live_agent.api_url.rsplit(":", 1)[1])}
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                address, port_hex = fields[1].rsplit(":", 1)
                if fields[3] == "0A" and int(port_hex, 16) in ports:  # 0A = LISTEN
                    listening.setdefault(int(port_hex, 16), set()).add(address)
    assert set(listening) == ports
    assert all(addresses == {"0100007F"} for addresses in listening.values()), listening
