"""`mtrank import`: a raw CSV file (no header, text labels) becomes a day folder's CSV the pipeline reads.

The pipeline reads CSV files with a header row and 0/1 label columns (CsvExampleGen, the curated schema).
Public data rarely looks like that: UCI's files have no header (the names are in a `.names` file), labels
are text (`>50K.`), and a label's source column must not stay beside the features. `data.raw` in the
configuration says how to read such a file, so no data set needs a preparation script:

    data:
      raw:
        columns: [age, workclass, ..., class]          # or `mtrank init --names adult.names` writes them
        comment: "|"
        derived:
          - {name: income_gt_50k, column: class, one_of: [">50K", ">50K."]}

Column names become identifiers (`education-num` -> `education_num`): they name TF features, Keras
layers and serving inputs. A file is written next to its final name and renamed into place, so a failed
import leaves nothing half-written, and an existing day file is never overwritten without `--force`.
"""

from __future__ import annotations

import codecs
import collections
import csv
import dataclasses
import datetime as dt
import fnmatch
import itertools
import os
import posixpath
import re
from pathlib import Path
from typing import Counter, Dict, Iterator, List, Optional, Sequence

from mtrank.config import Config, DerivedColumnSpec, RawCsvSpec, day_pattern

_LABEL_RULE = re.compile(r"^\s*(?P<name>[^=\s]+)\s*=\s*(?P<column>[^=<>!\s]+)\s*"
                         r"(?P<op>==|!=|>=|<=|>|<|\bin\b)\s*(?P<value>.*?)\s*$")


def identifier(name: str) -> str:
    """A column name usable as a TF feature, a Keras layer and a serving input: runs of anything but letters,
    digits and '_' become one '_' (`education-num` -> `education_num`, `class of worker` -> `class_of_worker`)."""
    ident = re.sub(r"\W+", "_", name.strip(), flags=re.ASCII).strip("_")
    if not ident:
        raise ValueError(f"column name {name!r} has no letter or digit")
    return ident if not ident[0].isdigit() else f"c_{ident}"


def read_names_file(path: os.PathLike | str) -> List[str]:
    """Column names from a names file: one name per line, or UCI/C4.5 `.names` lines `name: values.` with '|'
    comments. In the C4.5 format the first entry without a colon lists the class values; the class is the
    last column of the data and is named `class`."""
    entries = []
    for line in Path(path).read_text(errors="replace").splitlines():
        text = line.split("|", 1)[0].strip()
        if text:
            entries.append(text)
    if not entries:
        raise ValueError(f"{path}: no column names found (one per line, or C4.5 'name: values.' lines)")
    with_colon = [e for e in entries if ":" in e]
    if not with_colon:
        return [identifier(e) for e in entries]
    names = [identifier(e.split(":", 1)[0]) for e in with_colon]
    if ":" not in entries[0]:  # C4.5: the class values come first, the class column last
        names.append("class")
    return names


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value


def parse_derived(text: str) -> DerivedColumnSpec:
    """`name = column == value`, `name = column in a, b`, `name = column > number` (the `--label` option of
    `mtrank init`) as a derived column; quotes around a value are taken off."""
    m = _LABEL_RULE.match(text)
    if not m or not m["value"]:
        raise ValueError(f"cannot read {text!r}: write 'name = column == value', 'name = column in a, b' or "
                         "'name = column > number'")
    name, column, op, value = identifier(m["name"]), identifier(m["column"]), m["op"], m["value"]
    if op in ("!=", ">=", "<=", "<"):
        raise ValueError(f"{text!r}: {op} is not supported; use ==, in or > (e.g. '{m['name']} = {m['column']} > x' "
                         "for a threshold, 'in' for several values)")
    if op == "==":
        return DerivedColumnSpec(name=name, column=column, equals=_unquote(value))
    if op == ">":
        try:
            return DerivedColumnSpec(name=name, column=column, above=float(_unquote(value)))
        except ValueError:
            raise ValueError(f"{text!r}: {value!r} is not a number") from None
    values = [_unquote(v) for v in value.split(",") if v.strip()]
    return DerivedColumnSpec(name=name, column=column, one_of=values)


def derive(spec: DerivedColumnSpec, value: str) -> int:
    if spec.equals is not None:
        return int(value == spec.equals)
    if spec.one_of is not None:
        return int(value in spec.one_of)
    return int(float(value) > spec.above)


@dataclasses.dataclass
class ImportResult:
    """What one file became: its rows and, per derived column, how many source values gave 1 and 0."""

    source: Path
    target: Path
    rows: int
    columns: List[str]
    derived_values: Dict[str, Dict[int, Counter[str]]]

    def summary(self) -> List[str]:
        lines = [f"{self.source} -> {self.target}: {self.rows:,} rows, {len(self.columns)} columns"]
        for name, by_value in self.derived_values.items():
            for label in (1, 0):
                seen = ", ".join(f"{v!r} {n:,}" for v, n in by_value[label].most_common(5))
                lines.append(f"  {name} = {label}: {sum(by_value[label].values()):,} rows ({seen or 'none'})")
        return lines


def _lines(path: Path) -> Iterator[str]:
    """The file's lines as text, decoded one by one so that a byte that is not UTF-8 is named by its line; a
    byte-order mark is dropped."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{number}: not UTF-8 (byte {line[e.start]:#04x} at column {e.start + 1}); "
                                 "convert the file, e.g. iconv -f latin1 -t utf-8") from None


def _records(path: Path, raw: RawCsvSpec) -> Iterator[tuple]:
    """(line number, stripped fields) of each data line: blank lines and comment lines are skipped."""
    reader = csv.reader(_lines(path), delimiter=raw.delimiter, skipinitialspace=True)
    for fields in reader:
        if not fields or all(not v.strip() for v in fields):
            continue
        if raw.comment and fields[0].startswith(raw.comment):
            continue
        yield reader.line_num, [v.strip() for v in fields]


def day_folder_of(cfg: Config, day: dt.date) -> Path:
    """Where day `day`'s files go: the folder part of `data.span_pattern` under `data.root`."""
    root = cfg.resolve_path(cfg.data.root)
    if "://" in root:
        raise ValueError(f"{cfg.source}: data.root {root} is remote; `mtrank import` writes local folders "
                         "(import into a local root, then copy the day folders)")
    pattern = day_pattern(cfg.data.span_pattern, day)
    if "/" not in pattern:
        raise ValueError(f"{cfg.source}: data.span_pattern {cfg.data.span_pattern!r} has no day folder; "
                         "`mtrank import` writes one folder per day, e.g. '{YYYY}-{MM}-{DD}/*.csv'")
    return Path(root) / posixpath.dirname(pattern)


def import_file(raw: RawCsvSpec, source: os.PathLike | str, day_folder: os.PathLike | str, force: bool = False,
                limit: Optional[int] = None, file_pattern: str = "*.csv") -> ImportResult:
    """Writes `<day_folder>/<stem>.csv` from one raw file: a header, the kept columns, then the derived ones."""
    source = Path(source)
    target = _target(source, day_folder)
    if not fnmatch.fnmatch(target.name, file_pattern):
        raise ValueError(f"{target.name} would not match data.span_pattern's file part {file_pattern!r}; the "
                         "pipeline would not read it")
    if target.exists() and not force:
        raise FileExistsError(f"{target}: already imported; pass --force to replace it")
    records = _records(source, raw)
    first = next(records, None)
    if first is None:
        raise ValueError(f"{source}: no data rows")
    if raw.columns:
        columns = list(raw.columns)
        if [identifier(v) if v else "" for v in first[1]] == columns:  # a header after all: not a data row
            first = None
    else:
        columns = [identifier(c) for c in first[1]]
        first = None
    missing = [c for c in [d.column for d in raw.derived] + list(raw.drop) if c not in columns]
    if missing:
        raise ValueError(f"{source}: data.raw names {sorted(set(missing))}, which the file does not have "
                         f"(its columns: {', '.join(columns)})")
    dropped = set(raw.dropped)
    kept = [i for i, c in enumerate(columns) if c not in dropped]
    sources = [columns.index(d.column) for d in raw.derived]
    out_columns = [columns[i] for i in kept] + [d.name for d in raw.derived]
    twice = sorted({c for c in out_columns if out_columns.count(c) > 1})
    if twice:
        raise ValueError(f"{source}: column(s) {twice} would be written twice (two headers with the same "
                         "identifier, or a derived column named like a kept one); rename or drop one")
    counts: Dict[str, Dict[int, Counter[str]]] = {d.name: {1: collections.Counter(), 0: collections.Counter()}
                                                   for d in raw.derived}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    try:
        with open(partial, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(out_columns)
            for number, fields in itertools.chain([first] if first else [], records):
                if len(fields) != len(columns):
                    hint = "; set data.raw.comment to skip comment lines" if len(fields) == 1 and not raw.comment else ""
                    raise ValueError(f"{source}:{number}: expected {len(columns)} fields ({', '.join(columns)}), "
                                     f"got {len(fields)}{hint}")
                values = []
                for spec, at in zip(raw.derived, sources):
                    try:
                        label = derive(spec, fields[at])
                    except ValueError:
                        raise ValueError(f"{source}:{number}: column {spec.column!r} holds {fields[at]!r}, not a "
                                         f"number ({spec.name} = {spec.rule()})") from None
                    counts[spec.name][label][fields[at]] += 1
                    values.append(label)
                writer.writerow([fields[i] for i in kept] + values)
                rows += 1
                if limit and rows >= limit:
                    break
        if rows == 0:
            raise ValueError(f"{source}: no data rows")
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return ImportResult(source, target, rows, out_columns, counts)


def _target(source: Path, day_folder: os.PathLike | str) -> Path:
    return Path(day_folder) / f"{source.name.split('.')[0]}.csv"


def import_day(raw: RawCsvSpec, sources: Sequence[os.PathLike | str], day_folder: os.PathLike | str,
               force: bool = False, limit: Optional[int] = None, file_pattern: str = "*.csv") -> List[ImportResult]:
    """Imports every file of one day, all or nothing: names that would collide and files already imported
    are refused before anything is written, and a file failing removes the ones this call wrote before it."""
    targets = [_target(Path(s), day_folder) for s in sources]
    twins = sorted({t.name for t in targets if targets.count(t) > 1})
    if twins:
        raise ValueError(f"several files would be written as {twins} in {day_folder}; rename them")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)}: already imported; pass --force to replace")
    results: List[ImportResult] = []
    try:
        for source in sources:
            results.append(import_file(raw, source, day_folder, force=force, limit=limit, file_pattern=file_pattern))
    except BaseException:
        for done in results:
            if str(done.target) not in existing:
                done.target.unlink()
        raise
    return results
