"""The ledger of paper claims: every claim a chapter tests on two arms of its reference file.

``results/claims.json`` lists the claims, one object each: ``chapter`` (the reference file's
stem, e.g. ``"03_senet"``), ``claim``, ``paper`` (a bibtex key), ``paper_number`` (the paper's
figures as the chapter quotes them), arms ``a`` and ``b`` (the difference is b − a, as in the
chapter's ``REF.compare(a, b)``), ``margin`` (the equivalence margin, or null), ``options``
(any other keyword the chapter passes to ``compare``), ``expected`` (+1 when the claim says b is
higher on the file's metric, −1 when lower, 0 when it says the two perform alike), ``verdict``
(the verdict the chapter states) and ``chapter_ref`` (the chapter's name for that comparison,
which the tests use to find its asserts). Nothing in the ledger's numbers is typed: every
difference, interval and verdict is recomputed from the committed reference runs.

Verdicts, from the comparison's ``direction`` (the sign of a 95 % interval that excludes 0, else
0), its ``equivalent`` (two one-sided tests inside ±margin) and the claim's ``expected``:

* **reproduced**: direction == expected ≠ 0 (the interval lies on the claim's side of 0);
* **contradicted**: direction ≠ 0 and direction ≠ expected (detectably the other way, or a
  detectable difference where the paper claims none);
* **equivalent**: direction == 0 and equivalent: no difference as large as the margin. For a
  claim of no difference (expected 0) this is the outcome that supports it; for a directional
  claim it means that any effect is smaller than the margin;
* **not detectable**: direction == 0 and not equivalent: the runs cannot tell; quote it with
  its minimum detectable effect (``mde``).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from . import results

CLAIMS_FILE = "claims.json"
VERDICTS = ("reproduced", "contradicted", "equivalent", "not detectable")
FIELDS = ("chapter", "claim", "paper", "paper_number", "a", "b", "margin", "options", "expected",
          "verdict", "chapter_ref")


def chapters() -> list[str]:
    """Stems of the reference files the package can find (``results.results_dirs()``)."""
    stems = {p.stem for d in results.results_dirs() if d.is_dir() for p in d.glob("[0-9]*.json")}
    return sorted(stems)


def load_claims(path=None) -> list[dict]:
    """The claims of ``results/claims.json`` (or ``path``), each checked for its fields."""
    if path is None:
        path = next((d / CLAIMS_FILE for d in results.results_dirs() if (d / CLAIMS_FILE).exists()), None)
        if path is None:
            raise FileNotFoundError(f"no {CLAIMS_FILE} in {[str(d) for d in results.results_dirs()]}")
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    for i, row in enumerate(rows):
        missing = [k for k in FIELDS if k not in row]
        if missing:
            raise ValueError(f"claim {i} of {path} lacks {missing}")
        if row["expected"] not in (-1, 0, 1) or row["verdict"] not in VERDICTS:
            raise ValueError(f"claim {i} of {path}: expected must be -1, 0 or +1 and verdict one of "
                             f"{VERDICTS}, got {row['expected']!r} and {row['verdict']!r}")
    return rows


def reference(chapter: str):
    """The validated reference file of ``chapter``; ``ValueError`` for a chapter without one."""
    known = chapters()
    if chapter not in known:
        raise ValueError(f"chapter must be one of the reference files {known}, got {chapter!r}")
    return results.load(chapter)


def _compare(ref, a: str, b: str, margin, options: dict):
    for name, arm in (("a", a), ("b", b)):
        if arm not in ref.arms:
            raise ValueError(f"arm {name} must be one of the arms of {ref.chapter} {list(ref.arms)}, "
                             f"got {arm!r}")
    return ref.compare(a, b, margin=margin, **options)


def compare(chapter: str, a: str, b: str, *, margin: float | None = None, **options):
    """The :class:`~attn_lesson.stats.Comparison` of arm ``b`` against arm ``a`` in the reference
    file of ``chapter``, as the chapter computes it with ``REF.compare(a, b, margin=...)``."""
    return _compare(reference(chapter), a, b, margin, options)


def verdict(c, expected: int) -> str:
    """One of :data:`VERDICTS` for comparison ``c`` and the claim's expected direction."""
    if expected not in (-1, 0, 1):
        raise ValueError(f"expected must be -1, 0 or +1, got {expected!r}")
    if c.direction is None:
        raise ValueError(f"too few runs to judge {c.label_b} vs {c.label_a}")
    if c.direction != 0:
        return "reproduced" if c.direction == expected else "contradicted"
    return "equivalent" if c.equivalent else "not detectable"


def evaluate(row: dict) -> dict:
    """One claim with its recomputed comparison: the row's fields plus ``diff``, ``ci_low``,
    ``ci_high``, ``mde``, ``direction``, ``equivalent``, ``metric`` and ``ours`` (the verdict
    from the runs; ``verdict`` stays the chapter's)."""
    ref = reference(row["chapter"])
    c = _compare(ref, row["a"], row["b"], row["margin"], row["options"])
    metric = ref.config.get("train", {}).get("metric", "accuracy")
    return {**row, "diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "mde": c.mde,
            "direction": c.direction, "equivalent": c.equivalent,
            "metric": "mIoU" if metric == "miou" else metric, "ours": verdict(c, row["expected"])}


def ledger(claims: list[dict] | None = None) -> list[dict]:
    """Every claim of ``claims`` (default: :func:`load_claims`) evaluated by :func:`evaluate`."""
    return [evaluate(row) for row in (load_claims() if claims is None else claims)]


def counts(rows: list[dict]) -> dict[str, int]:
    """How many rows of a :func:`ledger` have each verdict from the runs, in :data:`VERDICTS` order."""
    n = Counter(r["ours"] for r in rows)
    return {v: n[v] for v in VERDICTS}


def _ours(r: dict) -> str:
    text = f"{100 * r['diff']:+.2f} [{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}]"
    return text + (f", MDE {100 * r['mde']:.2f}" if r["ours"] == "not detectable" else "")


def table(rows: list[dict], *, book: bool = False) -> str:
    """A markdown table of a :func:`ledger`: chapter, claim, paper, the paper's number, ours
    (b − a in points of the metric, 95 % interval; the MDE where not detectable) and the verdict.
    ``book=True`` writes the chapter as a link to its page and the paper as a citation (MyST)."""
    head = ["chapter", "claim", "paper", "paper's number", "ours, b − a (points)", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        chapter = f"{{doc}}`{r['chapter'][:2]} <../notebooks/{r['chapter']}>`" if book else r["chapter"]
        paper = f"{{cite}}`{r['paper']}`" if book else r["paper"]
        cells = [chapter, f"{r['claim']} ({r['b']} vs {r['a']})" if book else r["claim"], paper,
                 r["paper_number"], f"{_ours(r)} ({r['metric']})", r["ours"]]
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in cells) + " |")
    return "\n".join(lines)


PAGE_HEAD = """# The ledger of paper claims

Every claim of a paper that a chapter of this book tests by comparing two arms of its committed
reference runs, in one table. Nothing here is typed: `scripts/ledger.py` writes this page from
`results/claims.json` (which claim, which two arms, the paper's number as the chapter quotes it,
the direction the paper expects) and from the reference files, recomputing every difference,
interval and verdict with the same comparison the chapters use; a test fails when the page, a
row's verdict or the chapter's own assert disagree.

**Verdicts.** *Ours* is the difference b − a between the two arms, in points of the chapter's
metric (accuracy, or mIoU over the digit classes), with its 95 % interval over five seeds, paired
by seed. *Reproduced*: the interval excludes zero on the side the paper claims. *Contradicted*:
it excludes zero on the other side (or at all, where the paper claims no difference).
*Equivalent*: the interval includes zero and two one-sided tests put the difference inside the
chapter's margin (±0.5 or ±1 point), so any effect is smaller than the margin; for a claim of
no difference this is the outcome that supports it. *Not detectable*: neither; the minimum
detectable effect (MDE, at 80 % power) says how large an effect the runs could have seen.

Our runs are small models on generated digits, trained for minutes on a CPU; the papers trained
large networks on photographs. A verdict says what happens to the paper's claim *here*; each
chapter discusses why it may differ. Claims that a chapter judges from something other than two
arms' final scores (maps scored against ground truth, kept models with their glimpses moved, a
trend over training-set sizes) are in their chapters, not here.
"""


def page(rows: list[dict] | None = None) -> str:
    """The ledger page of the book (``book/ledger.md``): the explanation, the counts by verdict
    and the table of :func:`ledger` rows with links and citations."""
    rows = ledger() if rows is None else rows
    n = counts(rows)
    summary = ", ".join(f"{k} {v}" for k, v in n.items())
    return (PAGE_HEAD + f"\n**{len(rows)} claims:** {summary}.\n\n" + table(rows, book=True) + "\n")
