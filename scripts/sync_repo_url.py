"""Propagate the repository URL from _config.yml to every chapter.

The URL lives in ONE place: `repository.url` in `_config.yml`. Chapters need it twice (the
Colab badge and the setup cell that installs attn_lesson on Colab), so this script rewrites
both, in each chapter's MyST source (`notebooks/NN_slug.md`) and in its paired notebook
(`notebooks/NN_slug.ipynb`), so the pair stays in sync. `tests/test_notebooks.py` fails when
they disagree.

    python scripts/sync_repo_url.py          # rewrite notebooks
    python scripts/sync_repo_url.py --check  # exit 1 if any notebook is out of date
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BADGE_RE = re.compile(r"https://colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/blob/([^/\s)]+)/(notebooks/[^\s)]+\.ipynb)")
INSTALL_RE = re.compile(r'REPO_URL = "([^"]+)"')


def config_url() -> tuple[str, str]:
    text = (ROOT / "_config.yml").read_text()
    block = text.split("repository:", 1)[1]
    url = re.search(r"url:\s*(\S+)", block).group(1).rstrip("/")
    branch = re.search(r"branch:\s*(\S+)", block).group(1)
    return url, branch


def expected_badge(url: str, branch: str, nb_path: str) -> str:
    slug = url.split("github.com/", 1)[1]
    return f"https://colab.research.google.com/github/{slug}/blob/{branch}/{nb_path}"


def _rewrite(text: str, url: str, branch: str, nb_path: str) -> str:
    text = BADGE_RE.sub(lambda m: expected_badge(url, branch, nb_path), text)
    return INSTALL_RE.sub(f'REPO_URL = "{url}"', text)


def sync(check: bool = False) -> list[str]:
    url, branch = config_url()
    if "github.com/" not in url:
        raise SystemExit(f"repository.url in _config.yml must be a github.com URL, got {url!r}")
    stale = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        rel = nb.relative_to(ROOT).as_posix()
        data = json.loads(nb.read_text())
        changed = False
        for cell in data["cells"]:
            src = "".join(cell["source"])
            new = _rewrite(src, url, branch, rel)
            if new != src:
                cell["source"] = new.splitlines(keepends=True)
                changed = True
        if changed:
            stale.append(rel)
            if not check:
                nb.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        md = nb.with_suffix(".md")
        if md.exists():
            text = md.read_text()
            new = _rewrite(text, url, branch, rel)
            if new != text:
                stale.append(md.relative_to(ROOT).as_posix())
                if not check:
                    md.write_text(new)
    return stale


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = sync(check)
    if check and stale:
        print("out of date:", ", ".join(stale))
        sys.exit(1)
    print(("checked" if check else "synced"), "chapter files;", len(stale), "changed")
