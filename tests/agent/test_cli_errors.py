"""The CLI's errors print their message as written."""

from __future__ import annotations

from pathlib import Path

from strata.agent.cli.app import app
from typer.testing import CliRunner


def test_a_config_error_names_its_section(tmp_path: Path) -> None:
    """Messages name settings as ``[section] key``; printed as rich markup, the brackets
    (and the section) would vanish."""
    config = tmp_path / "strata.toml"
    config.write_text('[agent]\nmemory_limit = "lots"\n')
    result = CliRunner().invoke(app, ["agent", "--config", str(config)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "error: [agent] memory_limit must be a positive size" in result.output, result.output
