"""field_accuracy of OCR + extraction on generated receipts and non-expenses.

    python bench/ocr_accuracy.py [--count 120] [--seed 4242] [--engine rapidocr] [--misses]

Prints the figures and, last, ``ocr_accuracy: field_accuracy=… s_per_page=…``; writes
``bench/results/ocr_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# bench/ must not be on the import path: bench/http.py would hide the stdlib's http
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from services.documents.receipts import accuracy
from talix_ray.ocr import get_engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--seed", type=int, default=4242, help="not a seed the tests use")
    parser.add_argument("--engine", default="rapidocr")
    parser.add_argument("--misses", action="store_true", help="print every wrong field")
    parser.add_argument("--quick", action="store_true", help="100 documents")
    args = parser.parse_args()
    count = 100 if args.quick else args.count
    report = accuracy(count, args.seed, get_engine(args.engine))
    if args.misses:
        for miss in report.misses:
            print(miss)
    out = report.model_dump(exclude={"misses"})
    out["engine"] = args.engine
    out["seed"] = args.seed
    print(json.dumps(out, indent=2))
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "ocr_accuracy.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"ocr_accuracy: field_accuracy={report.field_accuracy} s_per_page={report.s_per_page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
