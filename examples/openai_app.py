"""An OpenAI app instrumented with the Strata SDK.

Runs against any OpenAI-compatible server. On this machine, start the local test server
and a Strata agent first::

    python tests/sdk/llm_server.py --port 8765 &
    strata agent &                                   # OTLP on 127.0.0.1:4318
    python examples/openai_app.py --base-url http://127.0.0.1:8765/v1

Then look at the trace: ``curl 'http://127.0.0.1:8321/api/v1/traces?service=openai-app'``.
"""

from __future__ import annotations

import argparse

import openai
from strata import init, shutdown, step, task, workflow


@task(name="draft")
def draft(client: openai.OpenAI, question: str) -> str:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}], temperature=0.2)
    return reply.choices[0].message.content or ""


@task(name="polish")
def polish(client: openai.OpenAI, text: str) -> str:
    parts = []
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Polish: {text}"}],
        stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


@workflow(name="answer")
def answer(client: openai.OpenAI, question: str) -> str:
    with step("embed-question"):
        client.embeddings.create(model="text-embedding-3-small", input=question)
    return polish(client, draft(client, question))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8765/v1")
    parser.add_argument("--endpoint", default=None, help="OTLP/HTTP endpoint of the agent")
    parser.add_argument("--api-key", default="local")
    args = parser.parse_args()
    init("openai-app", endpoint=args.endpoint, version="1.0.0", team="examples")
    with openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0) as client:
        print(answer(client, "What is the capital of France?"))
    shutdown()


if __name__ == "__main__":
    main()
