"""Candidates to rank: rows read from a CSV or JSON file, turned into what the model's signatures take.

One request usually carries one user and many items, so a JSON file may give the shared columns once
(`{"context": {...}, "candidates": [{...}, ...]}`) instead of repeating them on every row, and the
ranking_request signature takes them once too (`to_ranking_request`). The input
columns and their types come from the configuration, never from this module, so a data set change
is a configuration change.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import mtrank  # noqa: F401
import numpy as np

from mtrank import config as config_lib
from mtrank import feature_kinds

Row = Dict[str, Any]

class CandidateError(ValueError):
    """A candidates file or row the model cannot score; the message names the file, row and column."""


def read_candidates(path: str | Path) -> List[Row]:
    """Reads candidate rows from `.csv` (header row) or `.json` (a list of rows, or context + candidates)."""
    path = Path(path)
    if not path.exists():
        raise CandidateError(f"candidates file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="") as f:
            rows: List[Row] = [dict(r) for r in csv.DictReader(f)]
    elif suffix in (".json", ".jsonl"):
        rows = _read_json(path)
    else:
        raise CandidateError(f"{path}: unknown candidates format {suffix!r}; use .csv or .json")
    if not rows:
        raise CandidateError(f"{path}: no candidates in the file")
    return rows


def read_ranking_request(path: str | Path) -> Tuple[Row, List[Row]]:
    """(context, candidates) as the file gives them: a JSON `{"context": {...}, "candidates": [...]}` keeps
    the shared columns apart (for the ranking_request signature); any other file has an empty context."""
    path = Path(path)
    if path.suffix.lower() == ".json" and path.exists():
        try:
            payload = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise CandidateError(f"{path}: not valid JSON: {e}") from None
        if isinstance(payload, dict) and "candidates" in payload:
            read_candidates(path)  # validated the usual way
            return dict(payload.get("context") or {}), [dict(r) for r in payload["candidates"]]
    return {}, read_candidates(path)


def _read_json(path: Path) -> List[Row]:
    text = path.read_text()
    try:
        if path.suffix.lower() == ".jsonl":
            payload: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            payload = json.loads(text)
    except json.JSONDecodeError as e:
        raise CandidateError(f"{path}: not valid JSON: {e}") from None
    context: Row = {}
    if isinstance(payload, dict):
        if "candidates" not in payload:
            raise CandidateError(f"{path}: a JSON object needs a 'candidates' list (and optionally 'context')")
        context = dict(payload.get("context") or {})
        payload = payload["candidates"]
    if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
        raise CandidateError(f"{path}: candidates must be a list of objects (one per candidate)")
    return [{**context, **row} for row in payload]


def _value(cfg: config_lib.Config, row: Mapping[str, Any], index: int, column: str):
    if column not in row or row[column] is None or row[column] == "":
        raise CandidateError(f"candidate {index}: missing input column {column!r}; the model reads "
                             f"{cfg.input_columns} (configuration {cfg.source})")
    value, dtype = row[column], cfg.feature_dtype(column)
    try:
        return feature_kinds.raw_type(dtype).parse(value)
    except (TypeError, ValueError) as e:
        raise CandidateError(f"candidate {index}: column {column!r} must be {dtype}: {e}") from None


def to_example(cfg: config_lib.Config, row: Mapping[str, Any], index: int = 0,
               columns: Optional[Sequence[str]] = None):
    """One candidate as a tf.Example holding the input columns only (labels never reach serving); with
    `columns`, those input columns only (a ranking request's context, or a candidate's own part)."""
    import tensorflow as tf

    feature = {column: feature_kinds.raw_type(cfg.feature_dtype(column)).feature(_value(cfg, row, index, column))
               for column in (cfg.input_columns if columns is None else columns)}
    return tf.train.Example(features=tf.train.Features(feature=feature))


def to_serialized_examples(cfg: config_lib.Config, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Input of the `serving_default` signature: a [N] string array of serialized tf.Examples."""
    return np.array([to_example(cfg, row, i).SerializeToString() for i, row in enumerate(rows)], dtype=object)


def to_ranking_request(cfg: config_lib.Config, context: Mapping[str, Any],
                       rows: Sequence[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
    """Inputs of the ranking_request signature: `examples`, the context's input columns once as the first
    serialized tf.Example, then per candidate the input columns the context does not give (or that the
    candidate overrides); `is_context`, true on the first row only. Every input column must come from one
    or the other. The answer has one row per input row: drop the first (`candidate_rows`)."""
    shared = [c for c in cfg.input_columns if c in context and context[c] not in (None, "")]
    own = [c for c in cfg.input_columns if c not in shared]
    head = to_example(cfg, context, 0, shared).SerializeToString() if shared else b""
    examples = [head] + [to_example(cfg, row, i, own + [c for c in shared if c in row]).SerializeToString()
                         for i, row in enumerate(rows)]
    return {"examples": np.array(examples, dtype=object),
            "is_context": np.array([True] + [False] * len(rows), dtype=bool)}


def candidate_rows(outputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """A ranking request's answer without its context row (one request: the first row)."""
    return {name: np.asarray(values)[1:] for name, values in outputs.items()}


def to_raw_columns(cfg: config_lib.Config, rows: Sequence[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
    """Input of the raw-feature signature: one [N] array per input column, typed as configured."""
    return {column: np.array([_value(cfg, row, i, column) for i, row in enumerate(rows)],
                             dtype=feature_kinds.raw_type(cfg.feature_dtype(column)).numpy_dtype)
            for column in cfg.input_columns}


def id_columns(rows: Sequence[Mapping[str, Any]], cfg: config_lib.Config) -> List[str]:
    """Columns that identify a candidate in printed output: those in the file that are not model inputs,
    labels or oracle columns (item ids and the like), in file order."""
    hidden = set(cfg.input_columns) | set(cfg.label_columns) | set(cfg.oracle_columns)
    return [c for c in rows[0] if c not in hidden] if rows else []
