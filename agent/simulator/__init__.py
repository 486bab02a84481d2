"""A simulated GenAI stack (topology, scenario, effects, load, metrics, scoring) and the demo."""
