"""The ledger of paper claims: the claims file, its verdicts recomputed from the reference files,
their agreement with what each chapter asserts about the same comparison, and bad arguments."""
import json
import re
from collections import Counter
from pathlib import Path

import pytest

import attn_lesson as al
from attn_lesson import ledger

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ledger.load_claims()
NUM = r"[+-]?\d+\.\d+"
MIN_CROSS_CHECKED = 40          # rows whose chapter asserts or quotes the same comparison


@pytest.fixture(scope="module")
def rows():
    return ledger.ledger(CLAIMS)


def chapter_source(chapter):
    return (ROOT / "notebooks" / f"{chapter}.md").read_text(encoding="utf-8")


def asserted(source, expr):
    """The direction and equivalence that the chapter's assert lines state for ``expr`` (the
    chapter's name for the comparison): two sets, empty where the chapter asserts nothing."""
    directions, equivalent = set(), set()
    lines = [line for line in source.splitlines() if line.strip().startswith("assert ")]
    for e in {re.escape(expr), re.escape(expr.replace('"', "'"))}:
        for line in lines:
            directions |= {int(d) for d in re.findall(rf"(?<![\w\]]){e}\.direction\s*==\s*([+-]?\d)\b", line)}
            equivalent |= {not neg for neg in re.findall(rf"(not\s+)?(?<![\w\]]){e}\.equivalent\b", line)}
    return directions, equivalent


def quoted(source, expr):
    """The intervals "diff [low, high]" (points) that the chapter checks for ``expr``: a dict entry
    keyed like ``ref_cmp[...]``, or an f-string of the variable compared with ``==``."""
    interval = rf'"({NUM} \[{NUM}, {NUM}\])"'
    key = re.fullmatch(r"ref_cmp\[(.+)\]", expr)
    if key:
        k = re.escape(key.group(1)) + r"\s*:\s*"
        tuples = re.findall(k + rf"\(({NUM}), ({NUM}), ({NUM}),", source)      # (diff, low, high, ...)
        return set(re.findall(k + interval, source)) | {
            "{:+.2f} [{:+.2f}, {:+.2f}]".format(*map(float, t)) for t in tuples}
    v = re.escape(expr)
    pattern = (rf"{{100 \* {v}\.diff:\+\.2f}} \[{{100 \* {v}\.ci_low:\+\.2f}}, "
               rf'{{100 \* {v}\.ci_high:\+\.2f}}\]"\s*\\?\s*==\s*' + interval)
    return set(re.findall(pattern, source))


def quoted_direction(text):
    """+1 / -1 / 0 from a quoted "diff [low, high]"; None where a bound rounds to zero."""
    low, high = (float(x) for x in re.findall(NUM, text)[1:])
    if low == 0 or high == 0:
        return None
    return 1 if low > 0 else -1 if high < 0 else 0


def as_quoted(row, like):
    k = len(like.split()[0].split(".")[1])
    return f"{100 * row['diff']:+.{k}f} [{100 * row['ci_low']:+.{k}f}, {100 * row['ci_high']:+.{k}f}]"


def consistent(verdict, expected, direction, equivalent):
    """Whether a stored verdict can go with the direction / equivalence a chapter asserts."""
    if direction is not None:
        if verdict in ("equivalent", "not detectable") and direction != 0:
            return False
        if verdict == "reproduced" and direction != expected:
            return False
        if verdict == "contradicted" and direction in (0, expected):
            return False
    return not ((equivalent is True and verdict == "not detectable")
                or (equivalent is False and verdict == "equivalent"))


def test_the_claims_file_is_well_formed():
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    assert len(CLAIMS) >= 40
    seen = set()
    for row in CLAIMS:
        assert f"{{{row['paper']},".lower() in bib.lower(), row["paper"]
        assert (ROOT / "notebooks" / f"{row['chapter']}.md").exists(), row["chapter"]
        assert row["a"] != row["b"] and row["claim"] and row["paper_number"], row
        assert row["margin"] is None or row["margin"] > 0, row
        assert isinstance(row["options"], dict) and "margin" not in row["options"], row
        ref = row["chapter_ref"] or ""
        assert re.sub(r"^ref_cmp\[(.+)\]$", r"\1", ref) in chapter_source(row["chapter"]), row
        key = (row["chapter"], row["a"], row["b"], row["expected"])
        assert key not in seen, f"the same claim twice: {key}"
        seen.add(key)
    assert "claims" not in ledger.chapters()             # the claims file is no reference file


@pytest.mark.parametrize("row", CLAIMS, ids=lambda r: f"{r['chapter']}: {r['claim'][:40]}")
def test_both_arms_exist_in_the_reference_file(row):
    arms = al.results.load(row["chapter"]).arms
    assert row["a"] in arms and row["b"] in arms, (row["a"], row["b"], list(arms))


def test_every_recomputed_verdict_is_the_chapters(rows):
    wrong = [(r["chapter"], r["claim"], r["verdict"], r["ours"]) for r in rows if r["ours"] != r["verdict"]]
    assert not wrong, wrong
    for r in rows:
        assert r["ours"] == ledger.verdict(ledger.compare(r["chapter"], r["a"], r["b"],
                                                          margin=r["margin"]), r["expected"])


def test_the_verdicts_agree_with_what_the_chapters_assert(rows):
    checked = 0
    for r in rows:
        if r["chapter_ref"] is None:
            continue
        source = chapter_source(r["chapter"])
        directions, equivalent = asserted(source, r["chapter_ref"])
        assert len(directions) <= 1 and len(equivalent) <= 1, (r["chapter_ref"], directions, equivalent)
        d, e = next(iter(directions), None), next(iter(equivalent), None)
        texts = quoted(source, r["chapter_ref"])
        for text in texts:                     # the ledger computes the chapter's own comparison
            assert as_quoted(r, text) == text, (r["chapter"], r["chapter_ref"], as_quoted(r, text), text)
            assert consistent(r["verdict"], r["expected"], quoted_direction(text), None), (r["chapter_ref"], text)
        assert d is None or d == r["direction"], (r["chapter_ref"], d)
        assert e is None or e == r["equivalent"], (r["chapter_ref"], e)
        assert consistent(r["verdict"], r["expected"], d, e), (r["chapter_ref"], r["verdict"], d, e)
        checked += d is not None or e is not None or bool(texts)
    assert checked >= MIN_CROSS_CHECKED, checked


def test_the_consistency_rule_can_fail():
    assert not consistent("reproduced", +1, 0, None) and not consistent("equivalent", +1, 0, False)
    assert not consistent("contradicted", -1, -1, None) and not consistent("not detectable", 0, None, True)
    assert consistent("contradicted", 0, +1, None) and consistent("equivalent", -1, 0, True)
    assert [quoted_direction(t) for t in ("+0.42 [+0.19, +0.64]", "-3.46 [-6.07, -0.85]",
                                          "-0.19 [-0.47, +0.09]", "+0.27 [-0.00, +0.54]")] == [1, -1, 0, None]


def test_counts_and_table_are_the_ledgers(rows):
    counts = ledger.counts(rows)
    assert list(counts) == list(ledger.VERDICTS) and sum(counts.values()) == len(CLAIMS)
    assert counts == {v: Counter(r["verdict"] for r in CLAIMS)[v] for v in ledger.VERDICTS}
    lines = ledger.table(rows).splitlines()
    assert len(lines) == len(rows) + 2
    assert all(line.rstrip().endswith(f"| {r['ours']} |") for line, r in zip(lines[2:], rows))
    nd = [line for line, r in zip(lines[2:], rows) if r["ours"] == "not detectable"]
    assert nd and all("MDE" in line for line in nd)


def test_the_verdict_rule():
    a = [0.90, 0.91, 0.92, 0.93, 0.94]
    up = al.compare(a, [x + 0.05 for x in a], paired=True)
    assert [ledger.verdict(up, e) for e in (+1, -1, 0)] == ["reproduced", "contradicted", "contradicted"]
    same = al.compare(a, [0.9001, 0.9102, 0.9199, 0.9301, 0.9398], paired=True, margin=0.01)
    assert ledger.verdict(same, +1) == "equivalent" == ledger.verdict(same, 0)
    noisy = al.compare(a, [0.95, 0.86, 0.97, 0.88, 0.96], paired=True, margin=0.001)
    assert ledger.verdict(noisy, -1) == "not detectable"
    with pytest.raises(ValueError, match="too few runs"):
        ledger.verdict(al.compare(a[:2], a[:2]), +1)
    with pytest.raises(ValueError, match="expected must be -1, 0 or \\+1, got 2"):
        ledger.verdict(up, 2)


def test_bad_arguments_name_what_is_allowed(tmp_path):
    with pytest.raises(ValueError, match=r"chapter must be one of .*'03_senet'.*got '99_nothing'"):
        ledger.compare("99_nothing", "baseline", "SE (r=4)")
    with pytest.raises(ValueError, match=r"arm a must be one of the arms of 03_senet .*got 'SE'"):
        ledger.compare("03_senet", "SE", "SE (r=4)")
    with pytest.raises(ValueError, match=r"arm b must be one of .*'SE \(r=16\)'.*got 'SE \(r=2\)'"):
        ledger.evaluate({**CLAIMS[0], "chapter": "03_senet", "b": "SE (r=2)"})
    bad = tmp_path / "claims.json"
    bad.write_text(json.dumps([{k: v for k, v in CLAIMS[0].items() if k != "expected"}]))
    with pytest.raises(ValueError, match=r"lacks \['expected'\]"):
        ledger.load_claims(bad)
    bad.write_text(json.dumps([{**CLAIMS[0], "verdict": "agrees"}]))
    with pytest.raises(ValueError, match="verdict one of .*got .*'agrees'"):
        ledger.load_claims(bad)


def test_the_ledger_page_is_current_and_lists_every_claim(rows):
    """book/ledger.md is what scripts/ledger.py writes (never edited by hand): one table row per
    claim, with the counts by verdict, and it is in the book's table of contents."""
    page = (ROOT / "book" / "ledger.md").read_text(encoding="utf-8")
    assert page == ledger.page(rows), "book/ledger.md is stale: run `make ledger`"
    table_rows = [line for line in page.splitlines() if line.startswith("| {doc}")]
    assert len(table_rows) == len(CLAIMS)
    for verdict, n in ledger.counts(rows).items():
        assert f"{verdict} {n}" in page and sum(line.endswith(f"| {verdict} |") for line in table_rows) == n
    assert "file: book/ledger" in (ROOT / "_toc.yml").read_text()
