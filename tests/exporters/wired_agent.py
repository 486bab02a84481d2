"""``python -m tests.exporters.wired_agent ARGS`` runs ``strata agent ARGS``.

The runner builds the forwarder and webhooks itself now, so this is only the module name that
``benchmarks/forwarding.py`` starts its edge agent with; tests call ``launch_agent``.
"""

from __future__ import annotations

import sys

from strata.agent.cli.app import main as cli_main


def main() -> None:
    sys.argv = [sys.argv[0], "agent", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
