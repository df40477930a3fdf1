"""Write the book's ledger page, ``book/ledger.md``, from ``results/claims.json`` and the
reference files (see :mod:`attn_lesson.ledger`).

    python scripts/ledger.py           # write the page
    python scripts/ledger.py --check   # exit 1 when the committed page is not what it would write
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from attn_lesson import ledger  # noqa: E402

PAGE = ROOT / "book" / "ledger.md"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = ledger.page()
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run `make ledger`")
            return 1
        print(f"{PAGE.relative_to(ROOT)} is current")
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}: {len(ledger.load_claims())} claims")
    return 0


if __name__ == "__main__":
    sys.exit(main())
