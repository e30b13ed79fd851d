"""Label semantics, checked per day before anything is ingested: data that cannot be true never trains.

The curated schema checks each column alone (a label outside 0..1 is an anomaly the DataGate stops on);
what it cannot see is what labels mean together and from day to day:

- a task that `follows` another (purchase after click) never has a positive where its parent is 0;
- a binary task has positives and negatives on every day (AUC is undefined otherwise, and the model
  would learn that the event never happens);
- a task's positive rate stays inside its configured band (`tasks[].rate_band`, unless the binomial
  probability of the count at the band's edge says chance), and the evaluated
  day's within `data.max_label_rate_ratio` of the window's other days, when the difference is also
  significant (Fisher's exact test from scipy, p below `data.label_rate_p_value`), so that a small
  day's noise never stops a run (a day with one class is let through on the same terms);
- the evaluated day holds enough rows and positives, in the Evaluator's sample, for its blessing
  thresholds to mean anything (`evaluation.min_rows`, `evaluation.min_positives`).

Why here and not in ExampleValidator: these rules span columns and days, which TFDV's per-feature
constraints do not express, and DayWindow already reads every row of the window for the structural
checks (components/input_checks.py), so counting labels costs one dictionary update per row. Every
tolerance comes from the configuration; the messages name the day, file, column, rule and row count.
"""

import dataclasses
import json
import pathlib
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

MAX_LINES_NAMED = 5


class LabelError(ValueError):
    """Labels that cannot be true, or a day that cannot be judged; the run stops before ExampleGen."""


@dataclasses.dataclass(frozen=True)
class BinaryTask:
    name: str
    label: str
    follows_label: Optional[str] = None  # the parent task's label column
    rate_band: Optional[Tuple[float, float]] = None


@dataclasses.dataclass(frozen=True)
class LabelRules:
    """What DayWindow checks, built from the configuration and passed to it as one JSON parameter."""

    tasks: Tuple[BinaryTask, ...] = ()
    thresholded: Tuple[str, ...] = ()  # tasks with blessing thresholds: the evaluated day must be big enough
    max_rate_ratio: float = 0.0  # 0 = no comparison between days
    rate_p_value: float = 0.001
    min_eval_rows: int = 0
    min_eval_positives: int = 0
    max_eval_rows: int = 0  # the Evaluator's sample (components/eval_sample.py): the minimums apply to it
    source: str = ""  # the configuration file, for the messages (relative to the repository when inside it)

    @classmethod
    def from_config(cls, cfg) -> "LabelRules":
        binary = [t for t in cfg.tasks if t.type == "binary"]
        labels = {t.name: t.label for t in cfg.tasks}
        return cls(
            tasks=tuple(BinaryTask(t.name, t.label, labels.get(t.follows) if t.follows else None,
                                   tuple(t.rate_band) if t.rate_band else None) for t in binary),
            thresholded=tuple(dict.fromkeys(th.task for th in cfg.evaluation.thresholds
                                            if th.task in {t.name for t in binary})),
            max_rate_ratio=cfg.data.max_label_rate_ratio, rate_p_value=cfg.data.label_rate_p_value,
            min_eval_rows=cfg.evaluation.min_rows, min_eval_positives=cfg.evaluation.min_positives,
            max_eval_rows=cfg.evaluation.max_eval_rows, source=_shown_path(cfg.source))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LabelRules":
        if not text:
            return cls()
        raw = json.loads(text)
        tasks = tuple(BinaryTask(t["name"], t["label"], t["follows_label"],
                                 tuple(t["rate_band"]) if t["rate_band"] else None) for t in raw.pop("tasks"))
        return cls(tasks=tasks, **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def _shown_path(source: str) -> str:
    """The configuration's path as the messages show it: relative to the repository (the image's workdir on
    Kubeflow, where the compiling machine's absolute path means nothing)."""
    from mtrank import config as config_lib

    path = pathlib.Path(source)
    try:
        return str(path.resolve().relative_to(config_lib.REPO_ROOT))
    except ValueError:
        return source


@dataclasses.dataclass
class LabelCounts:
    """Positives and rows per task over a file or a day, and the lines that break `follows`."""

    rows: int = 0
    positives: Dict[str, int] = dataclasses.field(default_factory=dict)
    impossible: Dict[str, List[int]] = dataclasses.field(default_factory=dict)  # task -> line numbers

    def add(self, other: "LabelCounts") -> None:
        self.rows += other.rows
        for k, v in other.positives.items():
            self.positives[k] = self.positives.get(k, 0) + v
        for k, v in other.impossible.items():
            self.impossible.setdefault(k, []).extend(v)


class LabelCounter:
    """Fed one CSV row at a time by input_checks; values other than '0' and '1' are the schema's business."""

    def __init__(self, rules: LabelRules, header: Sequence[str]):
        index = {c: i for i, c in enumerate(header)}
        self.tasks = [(t, index.get(t.label), index.get(t.follows_label) if t.follows_label else None)
                      for t in rules.tasks if t.label in index]
        self.counts = LabelCounts(positives={t.name: 0 for t, _, _ in self.tasks})

    def row(self, fields: Sequence[str], line_no: int) -> None:
        self.counts.rows += 1
        for task, column, parent in self.tasks:
            if fields[column].strip() in ("1", "1.0"):
                self.counts.positives[task.name] += 1
                if parent is not None and fields[parent].strip() in ("0", "0.0"):
                    self.counts.impossible.setdefault(task.name, []).append(line_no)


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} rows ({100.0 * part / max(whole, 1):.2f} %)"


def check_file(rules: LabelRules, day: str, path: str, counts: LabelCounts) -> None:
    """A file with rows that cannot be true (a child positive where its parent is 0) stops the run."""
    for task in rules.tasks:
        lines = counts.impossible.get(task.name)
        if lines:
            named = ", ".join(str(n) for n in lines[:MAX_LINES_NAMED]) + (" ..." if len(lines) > MAX_LINES_NAMED else "")
            raise LabelError(
                f"day {day}: file {path}: {_share(len(lines), counts.rows)} have {task.label} = 1 where "
                f"{task.follows_label} = 0 (lines {named}). Task {task.name!r} follows the {task.follows_label!r} "
                f"task in {rules.source}, so these rows cannot be true; nothing was trained on them. Fix the export "
                "(often a join of two label sources) and run the day again.")


def check_days(rules: LabelRules, days: Dict[str, LabelCounts], patterns: Dict[str, str], eval_day: str) -> None:
    """Every day: positives and negatives, rate band; the evaluated day against the window's others; its size."""
    for day, counts in sorted(days.items()):
        where = f"day {day} ({patterns[day]})"
        others = [c for d, c in days.items() if d != day]
        for task in rules.tasks:
            if task.name not in counts.positives:  # the label column is missing: the schema check names it
                continue
            positives = counts.positives[task.name]
            if positives in (0, counts.rows) and not _plausible_one_class(rules, task, counts, others):
                kind = "no positive" if positives == 0 else "no negative"
                raise LabelError(
                    f"{where}: column {task.label!r} (task {task.name!r}) has {kind} among {counts.rows:,} rows. A "
                    f"day with one class cannot be true for a live system (a broken label join, an outage) and its "
                    f"AUC is undefined; the run stops before training. Check the export of {task.label}.")
            rate = positives / counts.rows
            if task.rate_band and _significantly_outside(rules, task.rate_band, positives, counts.rows):
                raise LabelError(
                    f"{where}: the {task.label!r} rate is {rate:.4f} ({_share(positives, counts.rows)}), outside "
                    f"the band {list(task.rate_band)} that {rules.source} sets for task {task.name!r} (rate_band). "
                    "Check the day's labels; if the rate really moved, widen the band.")
    if rules.max_rate_ratio and len(days) > 1:
        _check_rate_drift(rules, eval_day, days, patterns)
    _check_eval_size(rules, days[eval_day], f"day {eval_day} ({patterns[eval_day]})")


def _significantly_outside(rules: LabelRules, band: Tuple[float, float], positives: int, rows: int) -> bool:
    """Outside the band, and not by chance: the binomial probability of so few (or so many) positives at the
    band's edge is below `rate_p_value` (0 purchases in 300 rows at a 0.02 % floor is likely, and passes)."""
    from scipy import stats

    low, high = band
    if positives < low * rows:
        return stats.binom.cdf(positives, rows, low) < rules.rate_p_value
    if positives > high * rows:
        return stats.binom.sf(positives - 1, rows, high) < rules.rate_p_value
    return False


def _pooled_rate(task: BinaryTask, days: List[LabelCounts]) -> Optional[float]:
    rows = sum(c.rows for c in days if task.name in c.positives)
    return sum(c.positives[task.name] for c in days if task.name in c.positives) / rows if rows else None


def _plausible_one_class(rules: LabelRules, task: BinaryTask, counts: LabelCounts, others: List[LabelCounts]) -> bool:
    """Whether a day with one class is likely by chance: its size at the window's other days' rate (else the
    band's edge) gives it a probability of at least `rate_p_value` (a 300-row day without purchases at a
    0.9 % rate: 7 %). An unknown rate gives no excuse."""
    rate = _pooled_rate(task, others)
    if rate is None and task.rate_band:
        rate = task.rate_band[0] if counts.positives[task.name] == 0 else task.rate_band[1]
    if rate is None:
        return False
    p_zero_or_all = (1.0 - rate) ** counts.rows if counts.positives[task.name] == 0 else rate ** counts.rows
    return p_zero_or_all >= rules.rate_p_value


def _check_rate_drift(rules: LabelRules, eval_day: str, days: Dict[str, LabelCounts], patterns: Dict[str, str]) -> None:
    """The evaluated day against the median rate of the window's other days. Only the new day: the others
    passed as evaluated days of earlier runs, and a shift accepted then must not stop the runs after it."""
    from scipy import stats

    counts = days[eval_day]
    others = [c for d, c in days.items() if d != eval_day]
    for task in rules.tasks:
        if task.name not in counts.positives or any(task.name not in c.positives for c in others):
            continue
        rate = counts.positives[task.name] / counts.rows
        median = statistics.median(c.positives[task.name] / c.rows for c in others)
        ratio = max(rate, median) / max(min(rate, median), 1e-12)
        if ratio <= rules.max_rate_ratio:
            continue
        pooled_pos = sum(c.positives[task.name] for c in others)
        pooled_rows = sum(c.rows for c in others)
        table = [[counts.positives[task.name], counts.rows - counts.positives[task.name]],
                 [pooled_pos, pooled_rows - pooled_pos]]
        p_value = stats.fisher_exact(table).pvalue
        if p_value < rules.rate_p_value:
            direction = "above" if rate > median else "below"
            raise LabelError(
                f"day {eval_day} ({patterns[eval_day]}): the {task.label!r} rate {rate:.4f} is {ratio:.1f}x {direction} "
                f"the median {median:.4f} of the window's other days (Fisher's exact test p = {p_value:.1e}); "
                f"{rules.source} tolerates {rules.max_rate_ratio}x (data.max_label_rate_ratio). A label "
                "pipeline change or an outage is likelier than a real shift; check the day, or raise the ratio.")


def _check_eval_size(rules: LabelRules, counts: LabelCounts, where: str) -> None:
    """The evaluated day, as the Evaluator will see it: a day above `max_eval_rows` is evaluated on a hash
    sample of that many rows (components/eval_sample.py), so rows and positives are scaled to the sample."""
    share = min(1.0, rules.max_eval_rows / counts.rows) if rules.max_eval_rows else 1.0
    sampled = f" in the Evaluator's sample of ~{int(counts.rows * share):,} rows (evaluation.max_eval_rows)" \
        if share < 1.0 else ""
    short = []
    if counts.rows * share < rules.min_eval_rows:
        short.append(f"{counts.rows:,} rows (needs {rules.min_eval_rows:,}, evaluation.min_rows)")
    for name in rules.thresholded:
        positives = counts.positives.get(name, 0) * share
        if positives < rules.min_eval_positives:
            short.append(f"{positives:,.0f} positives for {name}{sampled} (needs {rules.min_eval_positives:,}, "
                         "evaluation.min_positives)")
    if short:
        raise LabelError(
            f"{where} is too small to judge a model against its blessing thresholds: {'; '.join(short)}. Its "
            "metrics would be noise, so the run stops before training. Evaluate on a bigger day, or lower the "
            f"minimums in {rules.source} knowing the thresholds then decide by chance.")
