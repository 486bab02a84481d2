"""Generated reference pages match the code; every doc page linked from the README exists."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_generated_reference_is_current() -> None:
    """docs/reference-*.md equal what docs/generate.py produces from the code now."""
    result = subprocess.run([sys.executable, "docs/generate.py", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_readme_links_resolve() -> None:
    """Every relative link in the README points at a file in the repository."""
    links = re.findall(r"\]\(([^)#]+)\)", (REPO / "README.md").read_text())
    relative = [link for link in links if not link.startswith("http")]
    assert len(relative) >= 10
    missing = [link for link in relative if not (REPO / link).exists()]
    assert not missing
