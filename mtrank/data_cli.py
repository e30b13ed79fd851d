"""`mtrank init` and `mtrank import`: a new CSV data set from nothing to the pipeline's inputs.

    mtrank init adult --csv adult.data --names adult.names --comment "|" \\
        --label "income_gt_50k = class in >50K, >50K." --label "never_married = marital_status == Never-married"
    mtrank import --config configs/adult.yaml --day 2026-01-01 adult.data
    mtrank run --config configs/adult.yaml --workspace workspace/adult
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path
from typing import List

from mtrank import config as config_lib
from mtrank import terminal

SCHEMA_HEADER = """\
# Curated schema of {name}, written by `mtrank init` from {rows:,} rows of {source}.
# TFDV's inference, then the rules of mtrank/schema_inference.py: labels are 0/1 and not in SERVING;
# id and oracle columns are tagged; a string domain tolerates {unseen:g} % of a day's rows with a value it does not
# list (min_domain_mass), above which the run stops; numbers seen non-negative must stay so. Edit freely.
"""


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def _refuse_existing(paths: List[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --force to replace them")


def cmd_init(args) -> int:
    import yaml
    from google.protobuf import text_format

    from mtrank import csv_import, schema_inference, starter_config

    config_path = Path(args.config_out or f"configs/{args.name}.yaml")
    schema_path = Path(args.schema_out or f"schemas/{args.name}/schema.pbtxt")
    data_root = Path(args.data_root or f"workspace/data/{args.name}")
    _refuse_existing([config_path, schema_path], args.force)
    columns: List[str] = []
    if args.names:
        columns = csv_import.read_names_file(args.names)
    elif args.columns:
        columns = [csv_import.identifier(c) for c in args.columns.split(",")]
    rules = [csv_import.parse_derived(r) if "=" in r else csv_import.identifier(r) for r in args.label]
    derived = [r for r in rules if not isinstance(r, str)]
    # tasks in the order given: the first carries the ranking score
    labels = [r if isinstance(r, str) else r.name for r in rules]
    raw = config_lib.RawCsvSpec(columns=columns, delimiter=args.delimiter, comment=args.comment, derived=derived,
                                drop=[csv_import.identifier(c) for c in args.drop])
    config_lib.check_raw_csv(raw, "mtrank init")  # before any file is read
    with tempfile.TemporaryDirectory(prefix="mtrank-init-") as tmp:
        imported = csv_import.import_file(raw, args.csv, tmp, limit=args.sample_rows or None)
        for line in imported.summary():
            print(f"[init] {line}", flush=True)
        log_file = terminal.scratch_log_dir() / f"init-{args.name}.log"
        print(f"[init] TFDV statistics and schema inference (log: {log_file}) ...", flush=True)
        with terminal.native_stderr_to(log_file):  # Beam's and TFDV's warnings are not the user's business
            stats = schema_inference.statistics_of_csv(str(imported.target))
    column_stats = schema_inference.column_stats(stats)
    rows = schema_inference.num_rows(stats)
    if args.id is not None:
        ids = [csv_import.identifier(c) for c in args.id]
    else:
        ids = [c for c in schema_inference.guess_ids(column_stats, rows) if c not in labels]
    oracle = [csv_import.identifier(c) for c in args.oracle]
    schema = schema_inference.curate(schema_inference.inferred_schema(stats), column_stats, labels, ids, oracle,
                                     args.min_domain_mass)
    text = starter_config.render(
        args.name, column_stats, rows, labels, raw=raw if (columns or derived or args.drop or args.comment
                                                           or args.delimiter != ",") else None,
        data_root=_relative(data_root, config_path.parent), schema=_relative(schema_path, config_path.parent),
        ids=ids, oracle=oracle, source=Path(args.csv).name)
    # What init writes must load; a failure here is a defect of init, found before anything is written.
    cfg = config_lib.from_dict(yaml.safe_load(text), source=str(config_path))
    header = SCHEMA_HEADER.format(name=args.name, rows=rows, source=Path(args.csv).name,
                                  unseen=round(100 * (1 - args.min_domain_mass), 6))
    for path, content in ((schema_path, header + text_format.MessageToString(schema)), (config_path, text)):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(content)
        os.replace(partial, path)
    print(f"[init] {schema_path}: {len(schema.feature)} columns ({len(labels)} labels"
          f"{f', ids: {ids}' if ids else ''})")
    print(f"[init] {config_path}: {len(cfg.features)} features, tasks {[t.name for t in cfg.tasks]}")
    print("\nNext: put each day's file into a day folder, then run the pipeline on the newest day:")
    print(f"  mtrank import --config {config_path} --day YYYY-MM-DD {args.csv}")
    print(f"  mtrank run --config {config_path} --workspace workspace/{args.name}")
    return 0


def cmd_import(args) -> int:
    from mtrank import csv_import

    cfg = config_lib.load(args.config)
    raw = cfg.data.raw or config_lib.RawCsvSpec()
    folder = csv_import.day_folder_of(cfg, args.day)
    file_pattern = posixpath.basename(cfg.data.span_pattern)
    for result in csv_import.import_day(raw, args.files, folder, force=args.force, limit=args.limit,
                                        file_pattern=file_pattern):
        for line in result.summary():
            print(f"[import] {line}")
    return 0


def add_init_parser(sub) -> None:
    p = sub.add_parser(
        "init", help="a curated schema and a starter configuration for a new CSV data set",
        description="Read one CSV file (with a header, or headerless with --names/--columns), derive 0/1 labels, "
                    "infer a schema with TFDV and curate it (labels out of SERVING, ids and oracle columns tagged, "
                    "tolerated unseen categories, number signs), and write a configuration that loads.")
    p.add_argument("name", help="data set name: configs/<name>.yaml, schemas/<name>/, the served model's name")
    p.add_argument("--csv", required=True, help="one CSV file of the data (a day's worth or a sample)")
    names = p.add_mutually_exclusive_group()
    names.add_argument("--names", help="names file of a headerless CSV: one name per line, or UCI/C4.5 'name: ...' "
                                       "lines (the class column, last, is then named 'class')")
    names.add_argument("--columns", help="comma-separated column names of a headerless CSV")
    p.add_argument("--label", action="append", required=True,
                   help="a task's label: a 0/1 column's name, or derived: 'name = column == value', "
                        "'name = column in a, b', 'name = column > number' (repeat for each task)")
    p.add_argument("--id", action="append", default=None,
                   help="an id column (tagged, not a starter feature); default: guessed from names and distinct counts")
    p.add_argument("--oracle", action="append", default=[], help="a column of true probabilities (simulated data)")
    p.add_argument("--drop", action="append", default=[], help="a column not to import at all")
    p.add_argument("--delimiter", default=",", help="field separator (default: %(default)r)")
    p.add_argument("--comment", default="", help="lines starting with this are skipped (UCI's adult.test: '|')")
    p.add_argument("--min-domain-mass", type=float, default=0.99,
                   help="share of a day's rows whose category the schema must list (default: %(default)s)")
    p.add_argument("--sample-rows", type=int, default=0, help="read at most this many rows (default: all)")
    p.add_argument("--config-out", help="default: configs/<name>.yaml")
    p.add_argument("--schema-out", help="default: schemas/<name>/schema.pbtxt")
    p.add_argument("--data-root", help="where `mtrank import` writes day folders (default: workspace/data/<name>)")
    p.add_argument("--force", action="store_true", help="replace an existing configuration and schema")
    p.set_defaults(func=cmd_init)


def add_import_parser(sub) -> None:
    p = config_lib.add_config_argument(sub.add_parser(
        "import", help="raw CSV files -> one day folder the pipeline reads",
        description="Write each file as <data.root>/<day>/<name>.csv with a header and the derived 0/1 labels "
                    "of the configuration's data.raw; label sources and data.raw.drop are left out."),
        "data.root and data.raw")
    p.add_argument("files", nargs="+", help="raw CSV files of that day")
    p.add_argument("--day", type=config_lib.parse_day, required=True, help="the day they hold, YYYY-MM-DD")
    p.add_argument("--limit", type=int, default=None, help="at most this many rows per file")
    p.add_argument("--force", action="store_true", help="replace files already imported for that day")
    p.set_defaults(func=cmd_import)
