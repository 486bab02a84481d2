"""The `strata` command line: the agent, the demo and thin API clients."""
