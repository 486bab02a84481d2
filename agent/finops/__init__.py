"""FinOps: cost, energy and carbon reports, the GPU attribution pass, budgets."""
