"""Structural checks of a day's CSV files before ExampleGen reads them.

Why: CsvExampleGen fails on some broken files with messages that name neither the day nor the file
nor the line ("Columns do not match specified csv headers" from deep inside Beam), and it reads an
empty file or a header-only day as a valid span of zero rows. These checks run in DayWindow, which
already lists each day's files, and stop the run before any data is ingested, naming the day, file,
line and column. What a column contains (types, ranges, NaN, unseen categories, labels) is checked
later against the curated schema by ExampleValidator and the DataGate (components/data_gate.py).
"""

import csv
import datetime as dt
import io
import posixpath
from typing import Dict, List, Sequence, Tuple

import tensorflow as tf

MAX_REPORTED = 5  # bad lines named per file; the count says how many there are in all


class BadInputError(ValueError):
    """Input data that must not be ingested; the message names the day, file, line or column and what to do."""


def _read_header_and_count(path: str, day: dt.date) -> Tuple[List[str], int, List[str]]:
    """The header, the number of data rows and the malformed lines (wrong field count) of one CSV file."""
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    if not text.strip():
        raise BadInputError(f"day {day}: file {path} is empty (no header, no rows). Re-export the day, or "
                            "remove the file if the day has no data.")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        raise BadInputError(f"day {day}: file {path} line 1: the header {header} has an empty or repeated "
                            "column name. Fix the export.")
    bad, rows = [], 0
    for line_no, row in enumerate(reader, start=2):
        if not row:  # a blank line: csv gives [], ExampleGen skips it
            continue
        rows += 1
        if len(row) != len(header):
            bad.append(f"line {line_no} has {len(row)} fields, the header has {len(header)}")
    return header, rows, bad


def check_day_files(day: dt.date, files: Sequence[str]) -> Dict[str, object]:
    """Checks every CSV file of one day; returns {'header': [...], 'rows': n}. Raises BadInputError."""
    headers: Dict[str, List[str]] = {}
    total = 0
    for path in sorted(files):
        header, rows, bad = _read_header_and_count(path, day)
        if bad:
            more = f" (and {len(bad) - MAX_REPORTED} more)" if len(bad) > MAX_REPORTED else ""
            raise BadInputError(f"day {day}: file {path} has {len(bad)} malformed row(s): "
                                f"{'; '.join(bad[:MAX_REPORTED])}{more}. Fix or drop those rows and run the day again.")
        headers[path] = header
        total += rows
    first_path, first = next(iter(headers.items()))
    for path, header in headers.items():
        if set(header) != set(first):
            raise BadInputError(_header_difference(f"day {day}: file {path}", header, f"file {first_path}", first))
    if total == 0:
        raise BadInputError(f"day {day}: files {sorted(files)} hold a header but no rows (an empty span). "
                            "Re-export the day; a run for it would train or evaluate on nothing.")
    return {"header": first, "rows": total}


def _header_difference(where: str, header: List[str], other_where: str, other: List[str]) -> str:
    missing = [c for c in other if c not in header]
    extra = [c for c in header if c not in other]
    hint = " (a renamed column?)" if missing and extra else ""
    return (f"{where} lacks column(s) {missing} that {other_where} has, and has column(s) {extra} that it "
            f"lacks{hint}. Every day must have the columns of the schema; fix the export or, for an intended "
            "change, update the schema and the configuration first.")


def check_window(data_root: str, day_patterns: Dict[str, str]) -> Dict[str, Dict[str, object]]:
    """Checks the files of every day of a run's window ({day folder pattern: ...}) and that all days have the
    same columns. `day_patterns` maps an ISO day to its file pattern relative to `data_root`."""
    checked: Dict[str, Dict[str, object]] = {}
    for day_text, pattern in day_patterns.items():
        files = tf.io.gfile.glob(posixpath.join(data_root, pattern))
        checked[day_text] = check_day_files(dt.date.fromisoformat(day_text), files)
    pattern_of = dict(day_patterns)
    days = sorted(checked)
    newest = days[-1]  # the evaluated day: the others are compared with it
    for day_text in days[:-1]:
        header, reference = checked[day_text]["header"], checked[newest]["header"]
        if set(header) != set(reference):
            raise BadInputError(_header_difference(f"day {newest} ({pattern_of[newest]})", reference,
                                                   f"day {day_text} ({pattern_of[day_text]})", header))
    return checked
