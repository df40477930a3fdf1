"""Tiny helpers for the notebook build scripts: cells from plain strings, saved without outputs."""
from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat

from sync_repo_url import config_url

ROOT = Path(__file__).resolve().parents[1]
REPO_URL, BRANCH = config_url()  # the one place: repository.url in _config.yml

SETUP = f'''# Setup: install attn_lesson from the course repository when it is missing (e.g. on Colab).
REPO_URL = "{REPO_URL}"
try:
    import attn_lesson
except ImportError:
    import subprocess, sys
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", f"git+{{REPO_URL}}"])
    import attn_lesson
'''


def badge(name: str) -> str:
    slug = REPO_URL.split("github.com/", 1)[1]
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{slug}/blob/{BRANCH}/notebooks/{name})")


def md(text: str):
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str):
    return nbformat.v4.new_code_cell(textwrap.dedent(text).strip("\n"))


def save(cells, name: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    for i, c in enumerate(nb.cells):
        c["id"] = f"c{i:02d}"  # stable ids keep diffs small
    path = ROOT / "notebooks" / name
    nbformat.write(nb, path)
    return path
