"""Structural checks of a day's CSV files before ExampleGen reads them, and the label checks on the way.

Why: CsvExampleGen fails on some broken files with messages that name neither the day nor the file
nor the line ("Columns do not match specified csv headers" from deep inside Beam), and it reads an
empty file or a header-only day as a valid span of zero rows. These checks run in DayWindow, which
already lists each day's files, and stop the run before any data is ingested, naming the day, file,
line and column. Every file of a day is checked like the first: its encoding (a gzip or binary file named
.csv, a UTF-8 byte-order mark, bytes that are not UTF-8) and its header, in order, since CsvExampleGen reads
every file of a day with the first file's columns. The same pass counts labels for
components/label_checks.py. What a column contains (types, ranges, NaN, unseen categories) is checked
later against the curated schema by ExampleValidator and the DataGate (components/data_gate.py).
"""

import csv
import datetime as dt
import io
import posixpath
from typing import Dict, List, Sequence, Tuple

import tensorflow as tf

from components import label_checks

MAX_REPORTED = 5  # bad lines named per file; the count says how many there are in all
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"


class BadInputError(ValueError):
    """Input data that must not be ingested; the message names the day, file, line or column and what to do."""


def decode_csv(path: str, day: dt.date, data: bytes) -> str:
    """The file as text, or BadInputError naming what the file really is."""
    where = f"day {day}: file {path}"
    if data.startswith(GZIP_MAGIC):
        raise BadInputError(f"{where} is gzip-compressed, not CSV text (it starts with the gzip bytes 1f 8b). "
                            "Decompress it (gunzip) into the day folder, or export plain CSV.")
    if data.startswith(UTF8_BOM):
        raise BadInputError(f"{where} starts with a UTF-8 byte-order mark (BOM, bytes ef bb bf): the first column "
                            "would be read as a different name. Save the file as UTF-8 without BOM.")
    nul = data.find(b"\x00", 0, 65536)
    if nul >= 0:
        raise BadInputError(f"{where} holds a NUL byte at byte {nul:,}: it is a binary file, not CSV text. "
                            "Re-export the day as CSV.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise BadInputError(f"{where} line {line}: byte {e.start:,} ({data[e.start:e.start + 1].hex()}) is not UTF-8. "
                            "Re-export the day as UTF-8 CSV.") from None


def _read_header_and_count(path: str, day: dt.date, rules: label_checks.LabelRules
                           ) -> Tuple[List[str], int, List[str], label_checks.LabelCounts]:
    """The header, the number of data rows, the malformed lines (wrong field count) and the label counts of
    one CSV file."""
    with tf.io.gfile.GFile(path, "rb") as f:
        text = decode_csv(path, day, f.read())
    if not text.strip():
        raise BadInputError(f"day {day}: file {path} is empty (no header, no rows). Re-export the day, or "
                            "remove the file if the day has no data.")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        raise BadInputError(f"day {day}: file {path} line 1: the header {header} has an empty or repeated "
                            "column name. Fix the export.")
    bad, rows = [], 0
    labels = label_checks.LabelCounter(rules, header)
    for line_no, row in enumerate(reader, start=2):
        if not row:  # a blank line: csv gives [], ExampleGen skips it
            continue
        rows += 1
        if len(row) != len(header):
            bad.append(f"line {line_no} has {len(row)} fields, the header has {len(header)}")
        elif not bad:
            labels.row(row, line_no)
    return header, rows, bad, labels.counts


def check_day_files(day: dt.date, files: Sequence[str],
                    rules: label_checks.LabelRules = label_checks.LabelRules()) -> Dict[str, object]:
    """Checks every CSV file of one day; returns {'header': [...], 'rows': n, 'labels': LabelCounts}.
    Raises BadInputError (structure) or label_checks.LabelError (rows that cannot be true)."""
    headers: Dict[str, List[str]] = {}
    total = 0
    counts = label_checks.LabelCounts()
    for path in sorted(files):
        header, rows, bad, file_counts = _read_header_and_count(path, day, rules)
        if bad:
            more = f" (and {len(bad) - MAX_REPORTED} more)" if len(bad) > MAX_REPORTED else ""
            raise BadInputError(f"day {day}: file {path} has {len(bad)} malformed row(s): "
                                f"{'; '.join(bad[:MAX_REPORTED])}{more}. Fix or drop those rows and run the day again.")
        headers[path] = header
        first_path, first = next(iter(headers.items()))
        if set(header) != set(first):
            raise BadInputError(_header_difference(f"day {day}: file {path}", header, f"file {first_path}", first))
        if header != first:
            moved = [f"column {i + 1} is {h!r} there, {f!r} in the first" for i, (h, f) in enumerate(zip(header, first))
                     if h != f][:MAX_REPORTED]
            raise BadInputError(
                f"day {day}: file {path} has the columns of file {first_path} in another order ({'; '.join(moved)}). "
                "CsvExampleGen reads every file of a day with the first file's column order, so values would land "
                "in the wrong columns. Write every file of the day with the same header.")
        label_checks.check_file(rules, day.isoformat(), path, file_counts)
        counts.add(file_counts)
        total += rows
    if total == 0:
        raise BadInputError(f"day {day}: files {sorted(files)} hold a header but no rows (an empty span). "
                            "Re-export the day; a run for it would train or evaluate on nothing.")
    return {"header": first, "rows": total, "labels": counts}


def _header_difference(where: str, header: List[str], other_where: str, other: List[str]) -> str:
    missing = [c for c in other if c not in header]
    extra = [c for c in header if c not in other]
    hint = " (a renamed column?)" if missing and extra else ""
    return (f"{where} lacks column(s) {missing} that {other_where} has, and has column(s) {extra} that it "
            f"lacks{hint}. Every day must have the columns of the schema; fix the export or, for an intended "
            "change, update the schema and the configuration first.")


def check_window(data_root: str, day_patterns: Dict[str, str],
                 rules: label_checks.LabelRules = label_checks.LabelRules()) -> Dict[str, Dict[str, object]]:
    """Checks the files of every day of a run's window ({day folder pattern: ...}), that all days have the
    same columns, and the labels (components/label_checks.py). `day_patterns` maps an ISO day to its file
    pattern relative to `data_root`; the newest day is the evaluated one."""
    checked: Dict[str, Dict[str, object]] = {}
    for day_text, pattern in day_patterns.items():
        files = tf.io.gfile.glob(posixpath.join(data_root, pattern))
        checked[day_text] = check_day_files(dt.date.fromisoformat(day_text), files, rules)
    pattern_of = dict(day_patterns)
    days = sorted(checked)
    newest = days[-1]  # the evaluated day: the others are compared with it
    for day_text in days[:-1]:
        header, reference = checked[day_text]["header"], checked[newest]["header"]
        if set(header) != set(reference):
            raise BadInputError(_header_difference(f"day {newest} ({pattern_of[newest]})", reference,
                                                   f"day {day_text} ({pattern_of[day_text]})", header))
    label_checks.check_days(rules, {d: c["labels"] for d, c in checked.items()}, pattern_of, newest)
    return checked
