"""Build the book with every chapter's outputs, executing each notebook at most once.

The notebooks in ``notebooks/`` are stored without outputs. Executed copies live in
``_build/executed/notebooks/``; nbval writes them (see the root ``conftest.py``) whenever a
notebook passes, each with a key that hashes the notebook and what its outputs depend on.
This script

1. lists the chapters in ``_toc.yml`` and finds those whose executed copy is missing or stale;
2. executes only those, through the same test command (pytest + nbval), which writes their
   copies and fails the build if a cell fails;
3. stages the book (``_config.yml`` with execution off, ``_toc.yml``, ``book/`` and the
   executed notebooks) in ``_build/stage`` and runs Jupyter Book on it with warnings as errors.
   The HTML lands in ``_build/html``.

So ``make test`` followed by ``make book`` (what CI runs) executes every notebook once, and
``make book`` alone on a fresh clone executes every notebook once.

    python scripts/book.py            # build (execute what is stale first)
    python scripts/book.py --status   # only list which executed copies are fresh or stale
    python scripts/book.py --no-execute  # fail instead of executing stale notebooks (CI)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "_build" / "stage"


def _conftest():
    spec = importlib.util.spec_from_file_location("attn_root_conftest", ROOT / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def toc_files(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """Every ``file:`` and the ``root:`` of the table of contents, in order."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def chapter_notebooks() -> list[Path]:
    return [ROOT / f"{f}.ipynb" for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


def status(conf) -> tuple[list[Path], list[Path]]:
    fresh, stale = [], []
    for nb in chapter_notebooks():
        copy = conf.executed_path(nb)
        ok = False
        if copy.exists():
            meta = json.loads(copy.read_text()).get("metadata", {})
            ok = meta.get("attn_lesson_execution", {}).get("key") == conf.execution_key(nb)
        (fresh if ok else stale).append(nb)
    return fresh, stale


def stage(conf) -> Path:
    if STAGE.exists():
        shutil.rmtree(STAGE)
    (STAGE / "notebooks").mkdir(parents=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    (STAGE / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    shutil.copy2(ROOT / "_toc.yml", STAGE / "_toc.yml")
    shutil.copytree(ROOT / "book", STAGE / "book")
    for nb in chapter_notebooks():
        shutil.copy2(conf.executed_path(nb), STAGE / nb.relative_to(ROOT))
    return STAGE


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--status", action="store_true", help="list fresh/stale copies and exit")
    ap.add_argument("--no-execute", action="store_true",
                    help="fail if any executed copy is missing or stale instead of executing it")
    args = ap.parse_args(argv)
    conf = _conftest()
    fresh, stale = status(conf)
    rel = lambda ps: ", ".join(p.name for p in ps) or "none"  # noqa: E731
    print(f"executed copies: {len(fresh)} fresh; stale or missing: {rel(stale)}")
    if args.status:
        return 0
    if stale and args.no_execute:
        print(f"--no-execute: these notebooks have no fresh executed copy: {rel(stale)} "
              "(run `make test` first)", file=sys.stderr)
        return 1
    if stale:
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
               *[str(p.relative_to(ROOT)) for p in stale]]
        print("executing:", " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=ROOT)
        if rc != 0:
            print("a notebook failed; the book is not built", file=sys.stderr)
            return rc
        fresh, stale = status(conf)
        if stale:
            print(f"still stale after execution: {rel(stale)}", file=sys.stderr)
            return 1
    stage(conf)
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(STAGE),
           "--path-output", str(ROOT), "--builder", "html", "-W", "--keep-going"]
    print("building:", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc == 0:
        print(f"Open {ROOT / '_build' / 'html' / 'index.html'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
