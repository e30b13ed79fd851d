"""The curated schema of a new data set: TFDV's inference on one day's CSV, then the project's rules.

TFDV infers types, presence and string domains (`tfdv.infer_schema`), but the inferred schema is not yet
a contract a daily pipeline can live with: its labels are ordinary features (so serving would expect
them), a category seen in 4 test rows but not in the sample stops a run, and nothing says which columns
are ids or oracle values. `curate` applies the rules the hand-written schemas/ follow:

- TRAINING and SERVING environments; labels are 0/1 INT columns not in SERVING;
- oracle columns (true probabilities of simulated data) tagged "oracle" and not in SERVING;
- id columns tagged "id", with no string domain (ids grow every day);
- every string domain tolerates unseen values up to `1 - min_domain_mass` of a day's rows
  (`distribution_constraints`), above which DataGate stops the run (docs/faults.md);
- numbers: a sign constraint (min 0) when no value in the sample is negative, and NaN refused in floats.
  No maximum: the sample's largest value is not a property of the column, and the serving guard refuses
  whatever lies outside the schema's range.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Sequence

from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

ID_NAME = re.compile(r"(^|_)(id|uuid|key)$", re.IGNORECASE)
MAX_STRING_DOMAIN = 100  # TFDV's default: a string column with more distinct values gets no domain


@dataclasses.dataclass(frozen=True)
class ColumnStats:
    """What the starter configuration needs to know of one column."""

    name: str
    dtype: str  # string | int | float
    distinct: int = 0  # strings
    minimum: float = 0.0  # numbers
    maximum: float = 0.0
    mean: float = 0.0
    std: float = 0.0
    missing: int = 0


def statistics_of_csv(path_glob: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV's statistics of CSV files with a header row, decoded the way CsvExampleGen decodes them."""
    import tensorflow_data_validation as tfdv

    return tfdv.generate_statistics_from_csv(data_location=path_glob)


def column_stats(stats: statistics_pb2.DatasetFeatureStatisticsList) -> Dict[str, ColumnStats]:
    dataset = stats.datasets[0]
    out = {}
    for f in dataset.features:
        name = f.path.step[0] if f.path.step else f.name
        if f.HasField("string_stats"):
            common = f.string_stats.common_stats
            out[name] = ColumnStats(name, "string", distinct=f.string_stats.unique,
                                    missing=int(common.num_missing))
        else:
            n = f.num_stats
            dtype = "int" if f.type == statistics_pb2.FeatureNameStatistics.INT else "float"
            out[name] = ColumnStats(name, dtype, minimum=n.min, maximum=n.max, mean=n.mean, std=n.std_dev,
                                    missing=int(n.common_stats.num_missing))
    return out


def num_rows(stats: statistics_pb2.DatasetFeatureStatisticsList) -> int:
    return int(stats.datasets[0].num_examples)


def guess_ids(columns: Dict[str, ColumnStats], rows: int) -> List[str]:
    """Columns named like ids (`user_id`, `item_key`, strings or numbers: an id number is no quantity), and
    string columns with more distinct values than TFDV gives a domain and over a tenth of the rows distinct:
    memorised rather than generalised, never defaulted in."""
    return [c.name for c in columns.values() if ID_NAME.search(c.name) or
            (c.dtype == "string" and c.distinct > MAX_STRING_DOMAIN and c.distinct > rows / 10)]


def curate(schema: schema_pb2.Schema, columns: Dict[str, ColumnStats], labels: Sequence[str],
           ids: Sequence[str] = (), oracle: Sequence[str] = (), min_domain_mass: float = 0.99) -> schema_pb2.Schema:
    """The inferred schema with the project's rules applied (see the module docstring)."""
    if not 0 < min_domain_mass <= 1:
        raise ValueError(f"min_domain_mass must be in (0, 1], got {min_domain_mass}")
    present = [f.name for f in schema.feature]
    unknown = sorted((set(labels) | set(ids) | set(oracle)) - set(present))
    if unknown:
        raise ValueError(f"column(s) {unknown} are not in the data; its columns: {present}")
    curated = schema_pb2.Schema()
    curated.CopyFrom(schema)
    del curated.default_environment[:]
    curated.default_environment.extend(["TRAINING", "SERVING"])
    id_domains = set()
    for f in curated.feature:
        if f.name in labels:
            stats = columns.get(f.name)
            if stats is None or stats.dtype != "int" or stats.minimum < 0 or stats.maximum > 1:
                raise ValueError(f"label {f.name!r} is not a 0/1 column in the sample; declare it as derived "
                                 f"(e.g. '{f.name} = column == value')")
            _only_int_domain(f, 0, 1)
            f.int_domain.is_categorical = True
            f.not_in_environment.append("SERVING")
        elif f.name in oracle:
            f.annotation.tag.append("oracle")
            f.not_in_environment.append("SERVING")
        elif f.name in ids:
            f.annotation.tag.append("id")
            if f.HasField("domain"):
                id_domains.add(f.domain)
                f.ClearField("domain")
        elif f.type == schema_pb2.BYTES and (f.HasField("domain") or f.HasField("string_domain")):
            f.distribution_constraints.min_domain_mass = min_domain_mass
        elif f.type in (schema_pb2.INT, schema_pb2.FLOAT):
            stats = columns.get(f.name)
            if f.type == schema_pb2.FLOAT:
                f.float_domain.disallow_nan = True
                if stats is not None and stats.minimum >= 0:
                    f.float_domain.min = 0.0
            elif stats is not None and stats.minimum >= 0:
                _only_int_domain(f, 0, None)
    kept = [d for d in curated.string_domain if d.name not in id_domains]
    del curated.string_domain[:]
    curated.string_domain.extend(kept)
    return curated


def _only_int_domain(f: schema_pb2.Feature, low: int, high) -> None:
    for field in ("domain", "string_domain", "bool_domain", "float_domain"):
        if f.HasField(field):
            f.ClearField(field)
    f.type = schema_pb2.INT
    f.int_domain.min = low
    if high is not None:
        f.int_domain.max = high


def inferred_schema(stats: statistics_pb2.DatasetFeatureStatisticsList) -> schema_pb2.Schema:
    """TFDV's own inference: types, presence, shapes, and a string domain for up to 100 distinct values."""
    import tensorflow_data_validation as tfdv

    return tfdv.infer_schema(stats, infer_feature_shape=True, max_string_domain_size=MAX_STRING_DOMAIN)
