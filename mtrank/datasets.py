"""Public CSV data sets turned into the pipeline's input layout: one folder of CSV files per day.

The pipeline reads any CSV file with a header row, driven only by a configuration and a curated schema.
UCI Adult ships without a header and with text labels, so this one step adds the header, turns the
two label columns into 0/1 integers (Transform reads labels as numbers), and lays the training file out
as day 1 and the test file as day 2: a run for day 2 then trains on adult.data and is judged on
adult.test, exactly the published split.

    .venv/bin/python -m mtrank.datasets adult --src ../shared/datasets/adult --out workspace/data/adult
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional

ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
                 "native_country", "income"]
# The two tasks of the multi-task literature on Adult; their source columns are dropped from the output,
# so neither can become a model input by mistake.
ADULT_LABELS = {"income_gt_50k": ("income", lambda v: v.rstrip(".") == ">50K"),
                "never_married": ("marital_status", lambda v: v == "Never-married")}
ADULT_FILES = {"adult.data": 0, "adult.test": 1}  # file -> day offset from the start date
ADULT_START = dt.date(2026, 1, 1)


def adult_rows(path: Path) -> Iterator[Dict[str, object]]:
    """Rows of one Adult file with the header's names; blank lines and the '|1x3 Cross validator' line of
    some copies of adult.test are skipped, and a trailing dot on the label ('>50K.') is accepted."""
    dropped = {source for source, _ in ADULT_LABELS.values()}
    with open(path, newline="") as f:
        for number, fields in enumerate(csv.reader(f, skipinitialspace=True), 1):
            if not fields or fields[0].startswith("|"):
                continue
            if len(fields) != len(ADULT_COLUMNS):
                raise ValueError(f"{path}:{number}: expected {len(ADULT_COLUMNS)} comma-separated fields "
                                 f"({', '.join(ADULT_COLUMNS)}), got {len(fields)}")
            raw = dict(zip(ADULT_COLUMNS, (v.strip() for v in fields)))
            row: Dict[str, object] = {k: v for k, v in raw.items() if k not in dropped}
            for label, (source, positive) in ADULT_LABELS.items():
                row[label] = int(positive(raw[source]))
            yield row


def output_columns() -> List[str]:
    dropped = {source for source, _ in ADULT_LABELS.values()}
    return [c for c in ADULT_COLUMNS if c not in dropped] + list(ADULT_LABELS)


def prepare_adult(src: Path, out: Path, start: dt.date = ADULT_START, limit: Optional[int] = None) -> Dict[str, int]:
    """Writes <out>/<day>/adult.csv for each Adult file (with a header); returns rows per day folder."""
    written = {}
    for name, offset in ADULT_FILES.items():
        path = Path(src) / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; expected the UCI Adult files {sorted(ADULT_FILES)} in {src}")
        day = (start + dt.timedelta(days=offset)).isoformat()
        target = Path(out) / day / "adult.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with open(target, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=output_columns())
            writer.writeheader()
            for row in adult_rows(path):
                writer.writerow(row)
                count += 1
                if limit and count >= limit:
                    break
        written[day] = count
    return written


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtrank.datasets",
                                     description="Lay a public CSV data set out as day folders with a header.")
    parser.add_argument("dataset", choices=["adult"])
    parser.add_argument("--src", default="../shared/datasets/adult", help="folder with adult.data and adult.test")
    parser.add_argument("--out", default="workspace/data/adult", help="data root to write day folders into")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=ADULT_START,
                        help="day of adult.data; adult.test is the day after (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many rows per file")
    args = parser.parse_args(argv)
    for day, rows in prepare_adult(Path(args.src), Path(args.out), args.start, args.limit).items():
        print(f"[datasets] {args.out}/{day}/adult.csv: {rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
