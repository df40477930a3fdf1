"""Root pytest hooks for the notebooks that nbval executes (unit tests are unaffected).

Three jobs:

1. **Output wait.** nbval waits a fixed 5 s for a cell's output messages after the kernel has
   replied that the cell finished. On a loaded 2-core machine, after a 90 s training cell, the
   output channel can lag behind the reply by more than that, and nbval then fails a cell that
   ran correctly ("Timeout of 5 seconds exceeded waiting for output"; seen once in CI). The
   cell's own time limit (``--nbval-cell-timeout`` in pyproject.toml) is unaffected.
2. **One execution serves the tests and the book.** nbval already receives every output of
   every cell. When all cells of a notebook pass, the notebook is written with those outputs to
   ``_build/executed/notebooks/`` together with a key (a hash of the notebook and of everything
   its outputs depend on: the package, the reference results). ``scripts/book.py`` builds the
   book from these copies and only executes notebooks whose copy is missing or stale, so
   ``make test`` followed by ``make book`` runs each notebook once. The notebooks in
   ``notebooks/`` stay output-free.
3. **Time is visible.** At the end of the run a table gives each notebook's wall time (setup,
   i.e. kernel start, plus all cells), slowest first, against the 120 s budget per chapter.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NBVAL_OUTPUT_WAIT_S = 120
BUDGET_S = 120.0
EXECUTED_DIR = ROOT / "_build" / "executed"
# What an executed notebook's outputs depend on besides its own cells.
KEY_SOURCES = ("attn_lesson/*.py", "results/**/*.json", "pyproject.toml")

# Recorded runs print text progress bars: a static page (the book) can show the final state of
# a text bar, but not of a widget whose state was never saved. Set before kernels start.
os.environ.setdefault("ATTN_LESSON_PROGRESS", "text")
# Figures must be rendered inline into the outputs, whatever backend the test process uses.
os.environ.pop("MPLBACKEND", None)


def execution_key(nb_path: Path) -> str:
    """Hash of a notebook's file and of the files its outputs depend on."""
    h = hashlib.sha256()
    files = [Path(nb_path)]
    for pattern in KEY_SOURCES:
        files += sorted(ROOT.glob(pattern))
    for f in files:
        h.update(f.resolve().relative_to(ROOT).as_posix().encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def executed_path(nb_path: Path) -> Path:
    return EXECUTED_DIR / Path(nb_path).resolve().relative_to(ROOT)


def _is_nbval_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


def _notebook_of(item) -> Path:
    return Path(str(item.parent.fspath)).resolve()


class _Recorder:
    def __init__(self):
        self.seconds = defaultdict(float)   # notebook -> setup + call + teardown
        self.failed = set()
        self.items = defaultdict(list)      # notebook -> its nbval cells, in order
        self.outputs = {}                   # item nodeid -> outputs captured by nbval

    def write(self, nb: Path) -> Path | None:
        items = self.items[nb]
        if nb in self.failed or not items or any(i.nodeid not in self.outputs for i in items):
            stale = executed_path(nb)
            if stale.exists():
                stale.unlink()
            return None
        book = copy.deepcopy(items[0].parent.nb)
        cells = {id(i.cell): i for i in items}
        count = 0
        for cell, original in zip(book.cells, items[0].parent.nb.cells):
            if cell.cell_type != "code":
                continue
            count += 1
            cell.execution_count = count
            item = cells.get(id(original))
            outs = copy.deepcopy(self.outputs.get(item.nodeid, [])) if item else []
            for out in outs:
                if out.get("output_type") == "execute_result":
                    out["execution_count"] = count
            cell.outputs = outs
        book.metadata["attn_lesson_execution"] = {
            "key": execution_key(nb),
            "seconds": round(self.seconds[nb], 1),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
        }
        target = executed_path(nb)
        target.parent.mkdir(parents=True, exist_ok=True)
        import nbformat

        nbformat.write(book, str(target))
        return target


_REC = _Recorder()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_nbval_cell(item) and hasattr(item, "output_timeout"):
            item.output_timeout = NBVAL_OUTPUT_WAIT_S
            _REC.items[_notebook_of(item)].append(item)


def pytest_runtest_logreport(report):
    nodeid = report.nodeid
    if ".ipynb::" not in nodeid:
        return
    nb = (ROOT / nodeid.split("::", 1)[0]).resolve()
    _REC.seconds[nb] += report.duration
    if report.failed or (report.when == "call" and report.skipped):
        _REC.failed.add(nb)


def pytest_runtest_teardown(item, nextitem):
    if not _is_nbval_cell(item):
        return
    outs = getattr(item, "test_outputs", None)
    if outs is not None:
        # nbval sets test_outputs while it runs the cell; notebooks are written at the end
        # of the session, once every report (including this teardown's) is in
        _REC.outputs[item.nodeid] = [copy.deepcopy(o) for o in outs]


def timing_table(seconds: dict, budget: float = BUDGET_S) -> list[str]:
    """Lines of the per-notebook time table, slowest first, budget marked."""
    rows = sorted(seconds.items(), key=lambda kv: -kv[1])
    width = max([len(Path(p).name) for p, _ in rows] + [8])
    lines = [f"{'notebook':<{width}}  {'time (s)':>8}  budget {budget:.0f} s"]
    for path, s in rows:
        mark = "ok" if s <= budget else f"OVER by {s - budget:.0f} s"
        lines.append(f"{Path(path).name:<{width}}  {s:8.1f}  {mark}")
    total = sum(seconds.values())
    lines.append(f"{'total':<{width}}  {total:8.1f}  ({len(rows)} notebooks)")
    return lines


def pytest_sessionfinish(session, exitstatus):
    written = []
    for nb in list(_REC.items):
        if _REC.seconds.get(nb):
            if _REC.write(nb) is not None:
                written.append(nb)
    session.config._attn_written = written


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _REC.seconds:
        return
    tr = terminalreporter
    tr.section("notebook wall times (setup + cells)")
    for line in timing_table(_REC.seconds):
        tr.write_line(line)
    written = getattr(config, "_attn_written", [])
    tr.write_line(f"executed copies for the book: {len(written)} written to "
                  f"{EXECUTED_DIR.relative_to(ROOT)}/")
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "notebook_times.json").write_text(json.dumps(
        {Path(p).name: round(s, 1) for p, s in _REC.seconds.items()}, indent=1) + "\n")
