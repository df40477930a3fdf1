"""Checks on the chapters' sources: one MyST text source per notebook, kept in sync by
jupytext; no references a reader cannot open; no corrupted characters."""
import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCES = sorted((ROOT / "notebooks").glob("*.md"))
PAGES = sorted((ROOT / "book").glob("*.md"))
sys.path.insert(0, str(ROOT / "scripts"))
import book as book_script  # noqa: E402

TOC_FILES = book_script.toc_files()
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CAPTIONS = " ".join(p.get("caption", "") for p in TOC.get("parts", []))
PUBLISHED_NUMBERS = {int(m.group(1)) for f in TOC_FILES
                     for m in [re.match(r"notebooks/(\d\d)_", f)] if m}
PUBLISHED_STEMS = " ".join(Path(f).name for f in TOC_FILES)

# Syllabus chapters that are not (yet) in the book: a name, how a sentence mentions it, and the
# slug that its notebook's file name will contain once it is published.
PLANNED_TOPICS = {
    "Residual Attention Network": (r"residual attention", "residual_attention"),
    "Spatial Transformer": (r"spatial transformer|\bSTN\b", "spatial_transformer"),
    "SAGAN layer": (r"\bSAGAN\b", "self_attention"),
    "non-local blocks": (r"non-local", "nonlocal"),
    "DANet": (r"\bDANet\b", "danet"),
    "CCNet / GCNet": (r"\bCCNet\b|\bGCNet\b", "ccnet"),
    "Vision Transformer": (r"vision transformer|\bViT\b", "vit"),
    "RAM": (r"\bRAM\b|recurrent attention model", "ram"),
    "Show-Attend-and-Tell": (r"show.attend|captioning", "show_attend"),
    "Attention to Scale": (r"attention to scale", "scale"),
    "attention zoo": (r"\bzoo\b", "zoo"),
    "DDP appendix": (r"\bDDP\b|torchrun", "torchrun"),
}
ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}
FORBIDDEN = [
    (r"\bguide\b", "an internal guide"),
    (r"prototype", "an internal prototype"),
    (r"lecture notes", "lecture notes the reader does not have"),
    (r"COURSE_GUIDE", "an internal document"),
]


def _prose(path: Path) -> str:
    """Markdown text of a chapter source or a book page, without code cells / code blocks."""
    text = path.read_text()
    text = re.sub(r"```\{code-cell\}.*?```", "", text, flags=re.S)
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _sentences(text: str):
    for para in re.split(r"\n\s*\n", text):
        for s in re.split(r"(?<=[.!?:;])\s+(?=[A-Z*(\[])|\n\s*[-|]\s", para):
            yield " ".join(s.split())


def test_every_notebook_has_one_paired_myst_source():
    assert [p.stem for p in NOTEBOOKS] == [p.stem for p in SOURCES]
    for nb in NOTEBOOKS:
        meta = json.loads(nb.read_text())["metadata"]
        assert meta.get("jupytext", {}).get("formats") == "ipynb,md:myst", \
            f"{nb.name} is not paired with its .md (jupytext --set-formats ipynb,md:myst)"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_pair_is_in_sync(nb_path):
    md = jupytext.read(nb_path.with_suffix(".md"))
    nb = nbformat.read(nb_path, as_version=4)
    got = [(c.cell_type, c.source) for c in md.cells]
    want = [(c.cell_type, c.source) for c in nb.cells]
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert got == want, (
        f"{nb_path.stem}: .md and .ipynb differ"
        + (f" at cell {first}" if first is not None else f" in cell count {len(got)} vs {len(want)}")
        + "; run `make sync` after editing either side")
    # the text source written from the notebook is byte-for-byte the committed one
    config = jupytext.config.load_jupytext_config(str(ROOT / "notebooks"))
    assert jupytext.writes(nb, fmt="md:myst", config=config) == nb_path.with_suffix(".md").read_text(), \
        f"{nb_path.stem}.md is not what jupytext writes from the notebook; run `make sync`"


@pytest.mark.parametrize("path", NOTEBOOKS + SOURCES + PAGES, ids=lambda p: p.name)
def test_no_control_characters(path):
    text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]) \
        if path.suffix == ".ipynb" else path.read_text()
    bad = [(m.start(), repr(m.group())) for m in re.finditer(r"[\x00-\x08\x0b-\x1f\x7f]", text)]
    assert not bad, f"{path.name}: control characters (e.g. '\\a' typed in a non-raw string) at {bad[:5]}"


@pytest.mark.parametrize("path", SOURCES + PAGES, ids=lambda p: p.name)
def test_no_references_to_internal_documents(path):
    text = path.read_text()
    for pattern, what in FORBIDDEN:
        hits = [text[max(0, m.start() - 40):m.end() + 40].replace("\n", " ")
                for m in re.finditer(pattern, text, flags=re.I)]
        assert not hits, f"{path.name} refers to {what}: {hits[:3]}"


@pytest.mark.parametrize("path", SOURCES + PAGES, ids=lambda p: p.name)
def test_no_cross_references_to_chapters_absent_from_the_toc(path):
    text = _prose(path)
    problems = []
    for target in re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", text):
        resolved = (path.parent / target).resolve().relative_to(ROOT).as_posix()
        if resolved not in TOC_FILES:
            problems.append(f"{{doc}} link to {target} (not in _toc.yml)")
    for s in _sentences(text):
        planned = "planned" in s.lower()
        for m in re.finditer(r"\b[Cc]hapters? (\d+)(?:\s*(?:–|-|and|to)\s*(\d+))?", s):
            nums = {int(m.group(1))} | ({int(m.group(2))} if m.group(2) else set())
            if nums - PUBLISHED_NUMBERS and not planned:
                problems.append(f"'{m.group()}' is not in the book: {s[:120]}")
        for m in re.finditer(r"\bParts? (IV|V|VI|III|II|I)\b", s):
            part = m.group(1)
            if f"Part {part}:" not in CAPTIONS and not planned:
                problems.append(f"Part {part} is not in the book: {s[:120]}")
        if re.search(r"\bchapters?\b", s, flags=re.I) and not planned:
            for name, (pattern, slug) in PLANNED_TOPICS.items():
                if slug not in PUBLISHED_STEMS and re.search(pattern, s, flags=re.I):
                    problems.append(f"the {name} chapter is not in the book: {s[:120]}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_the_reference_scanner_catches_what_it_should(tmp_path, monkeypatch):
    # as if Part VI had no caption yet (it has one, for the ledger page, before its chapter 20)
    monkeypatch.setitem(globals(), "CAPTIONS", CAPTIONS.replace("Part VI:", ""))
    page = tmp_path / "page.md"
    page.write_text("The attention zoo chapter compares every module.\n\nSee Chapter 20 for more.\n\n"
                    "Part VI ranks them by cost.\n")
    with pytest.raises(AssertionError) as err:
        test_no_cross_references_to_chapters_absent_from_the_toc(page)
    msg = str(err.value)
    assert "attention zoo chapter" in msg and "Chapter 20" in msg and "Part VI" in msg
    page.write_text("The planned zoo chapter will compare every module (Part VI, planned).\n")
    test_no_cross_references_to_chapters_absent_from_the_toc(page)


PROFILE_BRANCH = re.compile(
    r"\bif\b[^\n]*(PROFILE\.name|get_profile\(\)\.name|profile\s*==|RUN_[A-Z_]+)"
    r"|RUN_ABLATIONS|ablation_seeds|skipped on the [`\w{}.]* ?profile"
    r"|not run on the [`\w{}.]* ?profile")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_cell_runs_on_one_profile_only(path):
    """Profiles change sizes, never which cells run: no code cell branches on the profile's
    name or skips its work on a profile (sizes come from PROFILE.pick(cpu=..., gpu=...))."""
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", path.read_text(), flags=re.S)
    bad = [line.strip() for cell in cells for line in cell.splitlines()
           if PROFILE_BRANCH.search(line)]
    assert not bad, f"{path.name}: profile-dependent code: {bad[:5]}"


def test_profile_branch_check_catches_the_usual_forms():
    for line in ['if PROFILE.name == "gpu":', "RUN_ABLATIONS = len(CFG['ablation_seeds']) >= 3",
                 'if not RUN_ABLATIONS:', 'print(f"skipped on the {PROFILE.name} profile")',
                 "if al.get_profile().name != 'cpu':", 'if profile == "cpu":']:
        assert PROFILE_BRANCH.search(line), line
    for line in ['CFG = PROFILE.pick(cpu=dict(n=1), gpu=dict(n=2))',
                 'print(f"profile {PROFILE.name}: {N} images")']:
        assert not PROFILE_BRANCH.search(line), line
