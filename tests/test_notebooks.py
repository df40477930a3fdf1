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
def test_chapter_has_exercises_with_hidden_solutions(path):
    text = "".join("".join(c["source"]) for c in _load(path)["cells"] if c["cell_type"] == "markdown")
    assert text.count("<details>") >= 3 and text.count("<details>") == text.count("</details>"), \
        f"{path.name}: needs at least 3 exercises with <details> solutions"


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
    other = type("Other", (), {"output_timeout": 5})()
    root_conftest.pytest_collection_modifyitems(None, [cell, other])
    assert cell.output_timeout == root_conftest.NBVAL_OUTPUT_WAIT_S >= 60
    assert other.output_timeout == 5
