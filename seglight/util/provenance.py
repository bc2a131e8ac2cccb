"""Where results came from: the git commit of the seglight code that produced them, where it is a checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def code_version(folder: Path = PACKAGE) -> str | None:
    """The commit of the checkout holding ``folder`` ("<hash>", "+ local changes" appended when files under
    ``folder`` differ from it or are new), or None where it is not a git checkout (an installed wheel) or git
    is missing."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        run("ls-files", "--error-unmatch", "__init__.py")  # tracked here: not a copy installed inside a checkout
        commit = run("rev-parse", "--short=12", "HEAD")
        dirty = run("status", "--porcelain", "--", ".")  # the package's own files, new ones included
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit} + local changes" if dirty else commit
