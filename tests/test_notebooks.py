"""Static checks on the chapter notebooks (nbval executes them separately)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "scripts"))
import sync_repo_url  # noqa: E402


def _load(path):
    return json.loads(path.read_text())


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert {"00_how_to_use.ipynb", "01_what_is_attention.ipynb", "02_workbench.ipynb"} <= set(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    for i, cell in enumerate(_load(path)["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name} cell {i} has stored outputs"
            assert cell["execution_count"] is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_and_install_cell_use_the_configured_url(path):
    url, branch = sync_repo_url.config_url()
    cells = _load(path)["cells"]
    first = "".join(cells[0]["source"])
    assert sync_repo_url.expected_badge(url, branch, f"notebooks/{path.name}") in first, \
        f"{path.name}: Colab badge missing or stale; run `make sync-url`"
    setup = next(c for c in cells if c["cell_type"] == "code")
    src = "".join(setup["source"])
    assert f'REPO_URL = "{url}"' in src and "import attn_lesson" in src, \
        f"{path.name}: the first code cell must install attn_lesson from {url}"


def test_sync_script_reports_nothing_stale():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_repo_url.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_toc_lists_every_notebook_and_every_entry_exists():
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc) + re.findall(r"root:\s*(\S+)", toc)
    for f in files:
        assert any((ROOT / (f + ext)).exists() for ext in (".md", ".ipynb")), f"_toc.yml lists missing {f}"
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in files, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_has_exercises_with_executed_hidden_solutions(path):
    """At least three exercises (sphinx-exercise ``{exercise}`` directives), each answered by a
    gated solution (``{solution-start}`` ... ``{solution-end}``, a dropdown in the book) whose
    code cells run with the chapter under nbval: a solution is executed, not hoped to run."""
    cells = _load(path)["cells"]
    md = "".join("".join(c["source"]) + "\n" for c in cells if c["cell_type"] == "markdown")
    labels = re.findall(r":::\{exercise\}[^\n]*\n:label: (ex-[\w-]+)", md)
    assert len(labels) >= 3, f"{path.name}: needs at least 3 exercises, found {labels}"
    assert len(set(labels)) == len(labels), f"{path.name}: repeated exercise labels {labels}"
    solved = re.findall(r":::\{solution-start\} (ex-[\w-]+)\n:class: dropdown", md)
    assert sorted(solved) == sorted(labels), f"{path.name}: exercises {labels}, solutions {solved}"
    assert md.count("{solution-start}") == md.count("{solution-end}")
    assert "<details>" not in md, f"{path.name}: an old <details> solution is not executed"
    # the solutions' code cells sit between their start and end markers, as executed code cells
    inside, code_in_solutions = False, 0
    for c in cells:
        src = "".join(c["source"])
        if c["cell_type"] == "markdown":
            if "{solution-start}" in src:
                inside = src.rfind("{solution-start}") > src.rfind("{solution-end}")
            elif "{solution-end}" in src:
                inside = False
        elif inside:
            code_in_solutions += 1
    assert code_in_solutions >= 3, f"{path.name}: only {code_in_solutions} executed solution cells"


def test_nbval_output_wait_is_raised_by_the_root_conftest():
    import importlib.util
    import inspect

    import nbval.plugin

    # The attribute the root conftest overrides must still be the one nbval reads.
    src = inspect.getsource(nbval.plugin.IPyNbCell)
    assert "self.output_timeout = " in src and "timeout=self.output_timeout" in src
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    root_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root_conftest)
    cell = object.__new__(nbval.plugin.IPyNbCell)
    cell.output_timeout = 5
    cell.parent = type("File", (), {"fspath": str(ROOT / "notebooks" / "x.ipynb")})()
    other = type("Other", (), {"output_timeout": 5})()
    root_conftest.pytest_collection_modifyitems(None, [cell, other])
    assert cell.output_timeout == root_conftest.NBVAL_OUTPUT_WAIT_S >= 60
    assert other.output_timeout == 5


def _tiny_notebook(path, cells):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_markdown_cell("# t")] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))


def test_one_nbval_run_records_outputs_for_the_book_and_times_each_notebook(tmp_path):
    """End to end: the root conftest keeps each passing notebook's outputs (with a key) and
    prints the per-notebook time table; a failing notebook gets no executed copy."""
    import shutil

    import nbformat

    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "notebooks").mkdir()
    _tiny_notebook(tmp_path / "notebooks" / "good.ipynb",
                   ["print('hello')", "6 * 7", "import matplotlib.pyplot as plt\nplt.plot([0, 1]);"])
    _tiny_notebook(tmp_path / "notebooks" / "bad.ipynb", ["1 / 0"])
    out = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
                          "notebooks"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout[-2000:]          # bad.ipynb fails
    assert "notebook wall times" in out.stdout and "budget 120 s" in out.stdout
    lines = out.stdout.split("notebook wall times", 1)[1].splitlines()
    assert any(l.startswith("good.ipynb") and l.rstrip().endswith("ok") for l in lines)
    assert not (tmp_path / "_build" / "executed" / "notebooks" / "bad.ipynb").exists()
    nb = nbformat.read(str(tmp_path / "_build" / "executed" / "notebooks" / "good.ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3]
    assert code[0].outputs[0]["text"] == "hello\n"
    assert code[1].outputs[0]["data"]["text/plain"] == "42"
    assert any("image/png" in o.get("data", {}) for o in code[2].outputs), \
        "figures must be recorded inline (no MPLBACKEND leaking into the kernel)"
    nbformat.validate(nb)
    spec = importlib_util_spec(tmp_path / "conftest.py")
    assert nb.metadata["attn_lesson_execution"]["key"] == spec.execution_key(
        tmp_path / "notebooks" / "good.ipynb")


def importlib_util_spec(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("tmp_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_timing_table_is_sorted_and_marks_the_budget():
    conf = importlib_util_spec(ROOT / "conftest.py")
    lines = conf.timing_table({"a.ipynb": 12.0, "b.ipynb": 170.0, "c.ipynb": 119.9})
    assert [l.split()[0] for l in lines[1:4]] == ["b.ipynb", "c.ipynb", "a.ipynb"]
    assert "OVER by 50 s" in lines[1] and lines[2].endswith("ok") and "total" in lines[-1]


def test_execution_key_changes_with_the_notebook_and_the_package(tmp_path, monkeypatch):
    conf = importlib_util_spec(ROOT / "conftest.py")
    nb = ROOT / "notebooks" / "00_how_to_use.ipynb"
    key = conf.execution_key(nb)
    assert key == conf.execution_key(nb)
    fake_root = tmp_path / "repo"
    (fake_root / "attn_lesson").mkdir(parents=True)
    (fake_root / "n.ipynb").write_text("{}")
    (fake_root / "attn_lesson" / "m.py").write_text("x = 1\n")
    monkeypatch.setattr(conf, "ROOT", fake_root)
    k1 = conf.execution_key(fake_root / "n.ipynb")
    (fake_root / "attn_lesson" / "m.py").write_text("x = 2\n")
    k2 = conf.execution_key(fake_root / "n.ipynb")
    (fake_root / "n.ipynb").write_text('{"a": 1}')
    assert len({k1, k2, conf.execution_key(fake_root / "n.ipynb")}) == 3
