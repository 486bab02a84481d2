"""The dependency rule (docs/developers.md), checked on the source with ast.

Every ``import`` and ``from`` node counts, wherever it sits (module level, inside functions,
under ``TYPE_CHECKING``): a lazy import is still a dependency. Module names are the installed
ones (``strata.agent.store.db``), derived from pyproject's ``package-dir``; ``from strata.x
import y`` depends on ``strata.x.y`` when that is a module, else on ``strata.x``.

The rule, lowest layer first:
- leaves (LEAVES) import nothing of the project but model and errors, which import nothing;
- agent/store imports only leaves and itself;
- collectors, analytics and exporters import leaves, agent/store and themselves;
- only agent/server.py and agent/api/app.py import routers (the agent/api modules that
  build an ``APIRouter``);
- no import cycle, lazy imports included.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("agent", "analytics", "collectors", "exporters")
# Some of these are being created; the rules apply to those that exist.
LEAVES = ("agent/__init__.py", "agent/model.py", "agent/errors.py", "agent/semconv.py",
          "agent/config.py", "agent/units.py", "agent/protowire.py",
          "agent/ingest/metric_names.py", "agent/ingest/stats.py")
ROOTS = ("agent/model.py", "agent/errors.py")  # what the other leaves may import
ROUTER_IMPORTERS = ("agent/server.py", "agent/api/app.py")


@cache
def _package_dirs() -> list[tuple[tuple[str, ...], str]]:
    """(folder parts, installed name), longest folder first (agent/_namespace before agent)."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = [(Path(folder).parts, name) for name, folder in setuptools["package-dir"].items()]
    return sorted(dirs, key=lambda item: -len(item[0]))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    for folder, name in _package_dirs():
        if parts[:len(folder)] == folder:
            rest = [p for p in parts[len(folder):] if p != "__init__"]
            return ".".join([name, *rest])
    raise AssertionError(f"{path} is outside every package-dir")


@cache
def modules() -> dict[str, Path]:
    """Installed module name -> source file, for every module of the four folders."""
    return {module_name(p): p for folder in FOLDERS for p in sorted((REPO / folder).rglob("*.py"))}


@cache
def syntax(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@cache
def imports(path: Path) -> tuple[tuple[str, int], ...]:
    return tuple(_imports(path))


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """(project module imported, line) for every import node in *path*."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(syntax(path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base
                       for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):  # `from m import a, b`: one dependency on m
            if target == "strata" or target.startswith("strata."):
                yield target, node.lineno


def violations(paths: list[Path], allowed: set[str], rule: str) -> list[str]:
    return [f"{p.relative_to(REPO)}:{line} imports {target} ({rule})"
            for p in paths for target, line in imports(p) if target not in allowed]


def existing(relative: tuple[str, ...]) -> list[Path]:
    return [REPO / r for r in relative if (REPO / r).exists()]


def names(paths: list[Path]) -> set[str]:
    return {module_name(p) for p in paths}


def under(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_leaves_import_only_model_and_errors() -> None:
    roots = existing(ROOTS)
    found = violations(roots, set(), "a root leaf imports nothing of the project")
    found += violations([p for p in existing(LEAVES) if p not in roots], names(roots),
                        "a leaf imports at most model and errors")
    assert not found, "\n".join(found)


def test_store_imports_only_leaves() -> None:
    allowed = names(existing(LEAVES)) | names(under("agent/store"))
    found = violations(under("agent/store"), allowed, "agent/store imports only leaves")
    assert not found, "\n".join(found)


def test_collectors_analytics_exporters_import_only_leaves_and_the_store() -> None:
    found = []
    for folder in ("collectors", "analytics", "exporters"):
        allowed = names(existing(LEAVES)) | names(under("agent/store")) | names(under(folder))
        found += violations(under(folder), allowed,
                            f"{folder} imports only leaves, agent/store and itself")
    assert not found, "\n".join(found)


def defines_router(path: Path) -> bool:
    return any(isinstance(node, ast.Call) and getattr(node.func, "id", None) == "APIRouter"
               for node in ast.walk(syntax(path)))


def test_only_the_server_and_the_app_import_routers() -> None:
    routers = names([p for p in under("agent/api") if defines_router(p)])
    assert {"strata.agent.api.traces", "strata.agent.api.otlp"} <= routers  # the check works
    importers = existing(ROUTER_IMPORTERS)
    found = [f"{p.relative_to(REPO)}:{line} imports router {target}"
             for p in modules().values() if p not in importers
             for target, line in imports(p) if target in routers]
    assert not found, "\n".join(found)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), and self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_detection_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["e"]]


def test_no_import_cycle() -> None:
    graph = {name: {t for t, _ in imports(path) if t in modules()}
             for name, path in modules().items()}
    found = cycles(graph)
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_every_package_folder_is_installed() -> None:
    """A new sub-package must be listed in pyproject, or it is missing from the wheel."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    folders = {module_name(p) for folder in FOLDERS for p in (REPO / folder).rglob("__init__.py")}
    assert folders - listed == set()


def absolute_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def test_code_names_only_installed_modules() -> None:
    """No `import analytics` or `from agent.x import y`: those resolve only where the
    repository root is on sys.path (as in the tests), never once installed."""
    found = [f"{path.relative_to(REPO)}:{node.lineno} {name}"
             for path in modules().values() for node in ast.walk(syntax(path))
             for name in absolute_names(node) if name.split(".")[0] in FOLDERS]
    assert not found, "\n".join(found)


def test_package_data_is_read_by_installed_name() -> None:
    """``importlib.resources.files("analytics")`` works only where the repository root is
    on sys.path (the tests' cwd); installed, the package is ``strata.analytics``."""
    found = []
    for path in modules().values():
        for node in ast.walk(syntax(path)):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "files"
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and not str(node.args[0].value).startswith("strata.")):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.args[0].value!r}")
    assert not found, "\n".join(found)


def run_fresh(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """*code* in a new interpreter away from the repository: only the installed package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_only_strata_is_installed_at_top_level(tmp_path: Path) -> None:
    """`import agent` (or analytics, collectors, exporters) fails with only the package
    installed; the public entry points work."""
    code = ("import importlib.util, sys\n"
            "found = [n for n in sys.argv[1:] if importlib.util.find_spec(n) is not None]\n"
            "assert not found, found\n"
            "from strata import init, step, task, workflow\n"
            "from strata.analytics import AnomalyScorer\n")
    result = run_fresh(code, tmp_path, *FOLDERS)
    assert result.returncode == 0, result.stderr[-2000:]


def test_import_strata_agent_is_light(tmp_path: Path) -> None:
    """`import strata.agent` and `import strata.agent.sdk` start no threads and import no
    duckdb/fastapi/scikit-learn."""
    code = ("import sys, threading, strata.agent, strata.agent.sdk; "
            "heavy = {'duckdb', 'fastapi', 'sklearn'} & set(sys.modules); "
            "assert not heavy, heavy; assert threading.active_count() == 1")
    result = run_fresh(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_decode_worker_loads_no_duckdb(tmp_path: Path) -> None:
    """What a decode worker process imports (the decoder, and the pricer it unpickles) loads
    no DuckDB: each worker would hold its ~15 MiB for nothing (issue 18)."""
    code = ("import sys, strata.agent.ingest.decoding, strata.analytics.attribution; "
            "assert 'duckdb' not in sys.modules, 'duckdb'")
    result = run_fresh(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_agent_loads_scikit_learn_only_to_fit_a_forest(tmp_path: Path) -> None:
    """The multivariate outlier detector imports scikit-learn at its first fit, which needs a
    day of traffic: ~70 MiB an agent would otherwise hold from its start."""
    code = ("import sys, strata.agent.runner, strata.analytics.detectors; "
            "assert 'sklearn' not in sys.modules, 'sklearn'")
    result = run_fresh(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_deploy_detectors_run_without_scipy_stats(tmp_path: Path) -> None:
    """The deploy and pooled detectors take their tails from scipy.special: scipy.stats
    would add ~46 MiB to the agent."""
    code = ("import sys, numpy as np, strata.agent.runner\n"
            "from strata.analytics.detectors import deploys, pooled\n"
            "failed = np.zeros(600, dtype=bool)\n"
            "failed[0] = True\n"  # the type is known, so the rate (not novelty) test decides
            "failed[500:] = np.arange(100) % 2 == 0\n"
            "types = np.where(failed, 'E', '').astype(object)\n"
            "assert pooled.error_episodes(failed, types)\n"
            "verdict = deploys.error_verdict('errors', failed[:500], types[:500], failed[500:],\n"
            "                                types[500:], np.arange(100))\n"
            "assert verdict is not None\n"
            "assert 'scipy.stats' not in sys.modules, 'scipy.stats'\n")
    result = run_fresh(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_chdb_and_so_pandas_are_an_extra_not_a_requirement() -> None:
    """chdb requires pandas, which pyarrow imports at its first array once installed: ~30 MiB
    in every agent, ~45 MiB in every decode worker. Only ``strata-agent[chdb]`` brings it."""
    requires = importlib.metadata.requires("strata-agent") or []
    chdb = [r for r in requires if r.split(";")[0].strip().startswith("chdb")]
    assert chdb, requires
    assert all('extra == "chdb"' in r for r in chdb), chdb
    assert not any(r.startswith("pandas") and ";" not in r for r in requires), requires


def test_a_chdb_target_without_chdb_says_how_to_install_it(tmp_path: Path) -> None:
    """Without chdb, ``--clickhouse chdb:DIR`` and a forwarder to ``chdb:DIR`` stop at
    start-up with the pip command (not a retry loop), and the CLI exits with its error code."""
    code = ("import runpy, sys\n"
            "sys.modules['chdb'] = None  # as if not installed: importing it fails\n"
            "from strata.agent.store.clickhouse.engine import ClickHouseError, open_engine\n"
            "from strata.exporters.clickhouse_forward import ClickHouseForwarder\n"
            "for attempt in (lambda: open_engine('chdb:' + sys.argv[1] + '/ch'),\n"
            "                lambda: ClickHouseForwarder('chdb:' + sys.argv[1] + '/ch',\n"
            "                                            sys.argv[1] + '/queue', start=False)):\n"
            "    try:\n"
            "        attempt()\n"
            "    except ClickHouseError as exc:\n"
            "        assert \"pip install 'strata-agent[chdb]'\" in str(exc), exc\n"
            "    else:\n"
            "        raise AssertionError('no error without chdb')\n"
            "sys.argv = ['strata', 'hub', '--clickhouse', 'chdb:' + sys.argv[1] + '/ch',\n"
            "            '--otlp-port', sys.argv[2], '--api-port', sys.argv[3],\n"
            "            '--otlp-grpc-port', '0']\n"
            "runpy.run_module('strata.agent.cli', run_name='__main__')\n")
    result = run_fresh(code, tmp_path, str(tmp_path), str(free_port()), str(free_port()))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])  # the CLI's error
    assert "strata-agent[chdb]" in result.stdout + result.stderr, result.stderr[-2000:]
