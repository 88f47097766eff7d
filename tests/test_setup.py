"""The README's set-up path: `make test` brings the system programs the suite needs, or stops
before any test with one line naming them and the command that installs them; `.ci/run` is
that command and nothing more, so CI walks a newcomer's path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MESSAGE = (
    "error: make test needs chromium dot, not installed (installed by make only as root with apt-get): "
    "run 'sudo apt-get install -y chromium graphviz', then make test again"
)


def fake_bin(tmp_path: Path, uid: int) -> Path:
    """A PATH holding only an `id` that answers `uid`: no chromium, no dot, no apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_id = bin_dir / "id"
    fake_id.write_text(f"#!/bin/sh\necho {uid}\n")
    fake_id.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(("uid", "who"), [(1000, "not root"), (0, "root without apt-get")])
def test_make_test_stops_before_any_test_without_chromium_and_graphviz(
    tmp_path: Path, uid: int, who: str
) -> None:
    make = shutil.which("make")
    assert make, "make is needed"
    r = subprocess.run(
        [make, "-s", "-C", str(REPO), "test"],
        env={"PATH": str(fake_bin(tmp_path, uid)), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2, who
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == MESSAGE
    assert all(line.startswith("make") for line in lines[1:])  # make's own "Error 2" line


def test_make_test_installs_nothing_when_the_programs_are_there() -> None:
    """Under make test both programs are present, so the step is silent and succeeds."""
    assert shutil.which("chromium") and shutil.which("dot")
    r = subprocess.run(["make", "-s", "-C", str(REPO), "system-packages"], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_ci_runs_the_readme_command_and_nothing_else() -> None:
    script = (REPO / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in script if line.strip() and not line.lstrip().startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make test"]
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
