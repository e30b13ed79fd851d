"""A starter configuration for a new data set, written by `mtrank init` from TFDV's column statistics.

Every choice is one rule, here, and every choice is visible in the file it writes, so a user edits YAML
rather than code:
- a string column is `categorical`, embedded in round(1.6 · distinct^0.56) dimensions clamped to [2, 8]
  (the rule of thumb fast.ai uses), its vocabulary capped at 100 values (`top_k`) beyond that;
- an int or float column is `numeric` (z-scored by Transform), with `log1p` when it is non-negative and
  its standard deviation is above its mean (a tail heavier than an exponential's: counts, amounts);
- id columns and oracle columns are not features (listed in a comment: ids memorise: bench/results/id_features.md);
  each string id's comment suggests `hash_buckets` of 20x its distinct values (TFDV counts them), so that about 5 % of the ids share a row;
- each label is a binary task; the first carries the ranking score;
- evaluation slices on up to two string columns with at most 10 values; each task's AUC must be at least
  0.6 and may drop at most 0.01 against the model in production.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import json

import yaml

from mtrank.config import RawCsvSpec
from mtrank.schema_inference import ColumnStats

MAX_VOCABULARY = 100
MAX_SLICE_VALUES = 10


def embedding_dim(distinct: int) -> int:
    return int(min(8, max(2, round(1.6 * max(distinct, 1) ** 0.56))))


IDS_PER_BUCKET = 0.05


def hash_buckets(distinct: int) -> int:
    """Buckets for an id with `distinct` values: with n ids hashed into m buckets, a share 1 - exp(-n/m) of
    them shares its row with another id (m = 20 n: 4.9 %). Two significant digits, rounded up. Measured on
    the learning curve's 5,739 users and 2,300 items in 20,000 / 10,000 buckets (26 % / 19 % sharing) against
    100,000 / 50,000: mean warm-day click AUC +0.0027 over 3 seeds in process, +0.0011 through `mtrank
    backfill` (configs/impressions.yaml)."""
    wanted = max(1, distinct) / IDS_PER_BUCKET
    step = 10 ** max(0, len(str(int(wanted))) - 2)
    return int(-(-wanted // step) * step)


def feature_entry(column: ColumnStats) -> Dict[str, object]:
    if column.dtype == "string":
        entry: Dict[str, object] = {"name": column.name, "kind": "categorical",
                                    "embedding_dim": embedding_dim(column.distinct)}
        if column.distinct > MAX_VOCABULARY:
            entry["top_k"] = MAX_VOCABULARY
        return entry
    entry = {"name": column.name, "kind": "numeric", "dtype": column.dtype}
    if column.minimum >= 0 and column.std > column.mean:  # a tail heavier than an exponential's (CV > 1)
        entry["log1p"] = True
    return entry


def _flow(value: object) -> str:
    """One YAML value on one line. A scalar is written as JSON (valid YAML, always quoted where it must be:
    PyYAML would end a lone scalar with '...' and leave `yes`, `2024` or ' #' to be misread)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return json.dumps(value)
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()


def _raw_section(raw: RawCsvSpec) -> List[str]:
    lines = ["  raw:                                    # `mtrank import` reads raw files with these settings"]
    if raw.columns:
        lines.append(f"    columns: {_flow(list(raw.columns))}")
    if raw.delimiter != ",":
        lines.append(f"    delimiter: {_flow(raw.delimiter)}")
    if raw.comment:
        lines.append(f"    comment: {_flow(raw.comment)}")
    if raw.drop:
        lines.append(f"    drop: {_flow(list(raw.drop))}")
    if raw.derived:
        lines.append("    derived:                              # 0/1 labels; their source columns are not written")
        for d in raw.derived:
            entry = {k: v for k, v in (("name", d.name), ("column", d.column), ("equals", d.equals),
                                       ("one_of", d.one_of), ("above", d.above)) if v is not None}
            lines.append(f"      - {_flow(entry)}")
    return lines


def render(name: str, columns: Dict[str, ColumnStats], rows: int, labels: Sequence[str], *, data_root: str,
           schema: str, raw: Optional[RawCsvSpec] = None, ids: Sequence[str] = (), oracle: Sequence[str] = (),
           source: str = "") -> str:
    """The configuration file's text; `data_root` and `schema` are relative to the file's folder."""
    excluded = set(labels) | set(ids) | set(oracle)
    features = [c for n, c in columns.items() if n not in excluded]
    if not features:
        raise ValueError("no column is left for the features once labels, ids and oracle columns are set aside")
    slices = [c.name for c in features if c.dtype == "string" and c.distinct <= MAX_SLICE_VALUES][:2]
    out = [f"# Starter configuration for {name}, written by `mtrank init` from {rows:,} rows{f' of {source}' if source else ''}.",
           "# Every choice below is a rule of mtrank/starter_config.py; edit freely. Next steps: README,",
           "# 'Bring your own CSV'.",
           "data:",
           f"  root: {_flow(data_root)}          # <root>/YYYY-MM-DD/*.csv (relative to this file)",
           '  span_pattern: "{YYYY}-{MM}-{DD}/*.csv"',
           f"  schema: {_flow(schema)}",
           "  train_days: 1                           # a run for day D trains on D-1 and is evaluated on D"]
    if raw is not None:
        out += _raw_section(raw)
    out += ["", "features:"]
    out += [f"  - {_flow(feature_entry(c))}" for c in features]
    if ids:
        out.append("  # ids left out: add them with kind: id, min_count: 50 (rarer ids share one row; without it ids "
                   "memorise a small window) and hash_buckets 20x the distinct ids (a sample's count is a floor): "
                   + ", ".join(f"{n} (hash_buckets: {hash_buckets(columns[n].distinct)})"
                               if columns.get(n) and columns[n].distinct else n for n in ids))
    if oracle:
        out.append(f"  # oracle columns, never inputs: {', '.join(oracle)}")
    missing = [c.name for c in features if c.missing]
    if missing:
        out.append(f"  # columns with empty values in the sample (the schema's presence allows them): {', '.join(missing)}")
    out += ["", "tasks:"]
    for i, label in enumerate(labels):
        out.append(f"  - name: {_flow(label)}")
        out.append(f"    label: {_flow(label)}")
        out.append("    type: binary")
        if i == 0:
            out.append("    score_weight: 1.0                     # the served ranking score")
    out += ["", "model:",
            "  architecture: mmoe                      # shared_bottom | omoe | mmoe | cgc | ple",
            "  num_experts: 4",
            "  expert_units: [32]",
            "  tower_units: [16]",
            "  learning_rate: 0.003",
            "  batch_size: 256",
            "  steps_per_execution: 32",
            "  epochs: 6",
            "  seed: 7",
            "", "evaluation:",
            f"  slices: {_flow(slices)}",
            "  thresholds:"]
    out += [f"    - {{task: {_flow(label)}, metric: auc, lower_bound: 0.6, max_drop: 0.01}}" for label in labels]
    out += ["", "serving:", f"  model_name: {_flow(name)}", ""]
    return "\n".join(out)
