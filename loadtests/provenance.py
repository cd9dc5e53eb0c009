"""What every lab folder's meta.json says about where its figures came from: the commit and the machine's load."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """The checkout's commit, marked when tracked files have changes (what the figures were measured on)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    return head + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``1.17 / 2.21 / 2.61``."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())
