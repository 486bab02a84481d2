"""`python -m strata.agent.cli` runs the `strata` command."""

from strata.agent.cli.app import main

main()
