"""Query a running agent's incidents from Python (the same calls as the curl lines below).

    curl -s 127.0.0.1:8321/api/v1/incidents?status=open | python3 -m json.tool
    curl -s 127.0.0.1:8321/api/v1/incidents/<id>
    curl -s -X POST 127.0.0.1:8321/api/v1/incidents/<id>/ack

    python examples/query_incidents.py --api http://127.0.0.1:8321 [--ack]
"""

from __future__ import annotations

import argparse
import os

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=os.environ.get("STRATA_API_URL", "http://127.0.0.1:8321"))
    parser.add_argument("--ack", action="store_true", help="acknowledge the newest open incident")
    args = parser.parse_args()
    token = os.environ.get("STRATA_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=args.api, headers=headers, timeout=60) as api:
        api.post("/api/v1/analyze").raise_for_status()
        incidents = api.get("/api/v1/incidents", params={"status": "open"}).json()["incidents"]
        print(f"{len(incidents)} open incident(s)")
        for incident in incidents:
            cause = incident.get("suspected_cause") or {}
            suggestion = incident.get("suggestion") or {}
            print(f"- {incident['id']} [{incident['severity']}] {incident['summary']}")
            print(f"    cause: {cause.get('layer')}/{cause.get('signal')}; "
                  f"suggestion: {suggestion.get('action')}: {suggestion.get('detail')}")
        if args.ack and incidents:
            newest = incidents[0]["id"]
            status = api.post(f"/api/v1/incidents/{newest}/ack").json()["status"]
            print(f"acknowledged {newest}: {status}")


if __name__ == "__main__":
    main()
