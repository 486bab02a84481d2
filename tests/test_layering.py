"""The dependency rule of STYLE.md, checked on the source with ast."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "collectors", "analytics", "exporters")
LEAVES = {"agent/model.py", "agent/errors.py", "agent/semconv.py", "agent/config.py",
          "agent/metric_names.py"}
# Only these may import across the four packages.
CROSSING = ("agent/runner.py", "agent/api/", "agent/cli", "agent/server.py", "agent/demo")


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


def test_leaves_import_nothing_from_the_packages() -> None:
    """model, errors, semconv, config and metric_names import no other Strata module but model."""
    for leaf in LEAVES:
        imports = imported_packages(REPO / leaf)
        assert imports <= {"agent"}, (leaf, imports)
        text = (REPO / leaf).read_text()
        for line in text.splitlines():
            if line.startswith(("from agent", "import agent")):
                assert "strata.agent.model" in line or "strata.agent.errors" in line, (leaf, line)


def test_packages_only_import_leaves_across_boundaries() -> None:
    """collectors, analytics and exporters never import agent internals beyond the leaves."""
    allowed_agent = {"strata.agent.model", "strata.agent.errors", "strata.agent.semconv",
                     "strata.agent.config", "strata.agent.__version__",
                     "strata.agent.ingest.metric_names", "strata.agent.store.db",
                     "strata.agent.analysis.window"}
    for package in ("collectors", "analytics", "exporters"):
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    top = node.module.split(".")[0]
                    if top != "agent":
                        continue
                    modules = ([f"agent.{a.name}" for a in node.names]
                               if node.module == "agent" else [node.module])
                    for module in modules:
                        assert module in allowed_agent, (path, module)


def test_import_agent_is_light() -> None:
    """`import agent` and `import agent.sdk` start no threads and import no duckdb/fastapi."""
    code = ("import sys, threading, agent, agent.sdk; "
            "heavy = {'duckdb', 'fastapi', 'sklearn'} & set(sys.modules); "
            "assert not heavy, heavy; assert threading.active_count() == 1")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
