"""Graphviz's `dot` program turns DOT source into an image (the dependency graph, the ER
diagram). Piping to the program is all either needs: no Python binding."""

from __future__ import annotations

import shutil
import subprocess

from bilantools.errors import RefusedError

IMAGE_FORMATS = ("svg", "png")


def render_dot(source: str, fmt: str) -> bytes:
    """`source` drawn by `dot` as `fmt` (svg or png)."""
    dot = shutil.which("dot")
    if dot is None:
        raise RefusedError(
            f"--format {fmt} needs Graphviz's dot program: install graphviz (apt-get install graphviz), "
            "or use --format dot"
        )
    return subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True, check=True).stdout
