"""Every GET route's query parameters: out-of-range numbers and times are 4xx, never 5xx
(RELIABILITY S7, issue 18)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import LiveAgent
from tests.otlp_factory import genai_attributes, make_span, trace_request

HOSTILE = ("inf", "nan", "1e309", "99999999999999999999", "-99999999999999999999", "-1",
           "9223372036854775808", "9999-12-31T23:59:59Z", "0.0000000001s")
PATH_VALUES = {"trace_id": "5b8efff798038103d269b633813fc60c", "service": "rag-api",
               "incident_id": "inc-1", "id": "inc-1"}


def test_every_get_route_answers_hostile_numbers_and_times_without_5xx(
        live_agent: LiveAgent) -> None:
    """With data present (so queries really run), each query parameter of each GET route (as
    the app's OpenAPI lists them) gets each hostile value alone: the answer is 200 or a 4xx
    with a reason, never a 5xx."""
    body = trace_request([make_span(attributes=genai_attributes())]).SerializeToString()
    assert httpx.post(live_agent.otlp_endpoint + "/v1/traces", content=body,
                      headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    paths = live_agent.get("/openapi.json").json()["paths"]
    requests = [
        (template.format_map(PATH_VALUES), param["name"], value)
        for template, item in sorted(paths.items())
        if "get" in item and not template.startswith("/ui")
        for param in item["get"].get("parameters", []) if param["in"] == "query"
        for value in HOSTILE
    ]
    assert len(requests) >= 300, len(requests)
    with httpx.Client(base_url=live_agent.api_url, timeout=30) as client:

        def status(request: tuple[str, str, str]) -> tuple[int, str]:
            path, name, value = request
            reply = client.get(path, params={name: value})
            return reply.status_code, reply.json().get("detail", "") if reply.is_error else ""

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(status, requests))
    failures = [(r, a) for r, a in zip(requests, answers, strict=True)
                if a[0] >= 500 or (a[0] >= 400 and not a[1])]
    assert not failures, "\n".join(map(str, failures))
