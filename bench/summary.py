"""Gathers every benchmark's markdown under bench/results/ into bench/results/SUMMARY.md (what `make bench` ends with),
and writes its headline table into README.md between the `bench:headline` markers: the README's figures come
from bench/results, never typed by hand (tests/test_readme_figures.py fails when they drift)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- bench:headline (written by bench/summary.py from bench/results) -->", "<!-- /bench:headline -->"
SUITE = [("trainer_throughput", "Trainer throughput"), ("pipeline_scaling", "Pipeline scaling"),
         ("simulator", "Simulator"), ("serving_latency", "Serving latency"),
         ("serving_batching", "Serving under concurrency"),
         ("evaluator_throughput", "Evaluator throughput"), ("gate_noise", "The gate's false-rejection rate"),
         ("id_features", "Id features: what each lever buys"),
         ("id_features_small_window", "Id features on the end-to-end test's window (2 days of 20,000 rows)"),
         ("id_features_2_days", "Id features on 2 days of 100,000 rows"), ("warm_chain", "Daily warm starts: by value, by position, cold"),
         ("learning_curve", "Learning curve: daily retraining against a cold model and a logistic regression"),
         ("learning_curve_before_lazy_adam", "Learning curve with tf_keras's Adam, which moves every id row on every step "
                                             "(eec10e5)"),
         ("learning_curve_before_hash_buckets", "Learning curve with 20,000 / 10,000 id buckets (81f910d)"),
         ("learning_curve_before_ids_l2", "Learning curve before L2 on the id rows and the cross FM pairs (2c7fa27)"),
         ("learning_curve_fresh_adam", "Learning curve with a fresh Adam every warm run and a constant warm rate "
                                       "(the default before warm_start_optimizer and warm_start_decay, 80c271c)"),
         ("learning_curve_dimension", "Learning curve with interaction weights per dimension (interaction_weights: "
                                      "dimension, e8d6960)"),
         ("warm_settings_no_ids", "Warm-run settings replayed on the learning curve's days"),
         ("learning_curve_no_ids", "Learning curve without id features"),
         ("learning_curve_ids", "Learning curve with user and item id features, no min_count (c371254)"),
         ("warm_settings", "Warm-run settings replayed on the learning curve's days, with ids"),
         ("warm_optimizer", "Warm runs that continue the optimizer (Adam's state carried, the rate shrinking with "
                            "the chain's age), replayed on the learning curve's days"),
         ("warm_replay_seeds", "The configuration's warm runs replayed through the Trainer with model seeds 7-9, "
                               "lazy_adam against tf_keras's Adam"),
         ("learnable_bound", "What the learning curve's days allow: the simulator's own click model fitted to them"),
         ("warm_replay_ids_l2", "The default configuration with L2 0.03 on the id rows and the FM pairs user·category "
                                "and segment·item, replayed through the Trainer on the learning curve's days")]


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def headline() -> str:
    """One table of the figures people ask for first (also pasted into the README)."""
    rows = ["| benchmark | size and settings | figure | side-by-side ratio |", "|---|---|---|---:|"]
    t = _load("trainer_throughput")
    if t:
        v = {r["variant"]: r for r in t["variants"]}
        naive, project = v["naive"], v["project"]
        size = f"{t['train_rows']:,} rows, {t['epochs']} epochs, default MMoE"
        rows.append(f"| Trainer: project vs naive Keras MMoE | {size} | {project['examples_per_second']:,.0f} vs "
                    f"{naive['examples_per_second']:,.0f} examples/s; eval loss {project['eval_loss']:.4f} vs "
                    f"{naive['eval_loss']:.4f} | **{project['examples_per_second'] / naive['examples_per_second']:.2f}x** |")
        for name, against, what in (("naive_batch_1024", "naive", "naive at batch 1024 (the batch size alone)"),
                                    ("steps_per_execution", "in_memory", "32 steps per call, batch 128"),
                                    ("in_memory", "tfxio_stream", "in-memory input vs TFXIO streamed every epoch"),
                                    ("xla", "steps_per_execution", "XLA on vs off (batch 128)"),
                                    ("einsum", "naive", "einsum experts vs list of Dense (batch 128)"),
                                    ("project", "project_adam", "lazy_adam vs tf_keras's Adam (the id tables' rows)")):
            if name in v and against in v:
                rows.append(f"| Trainer: {what} | same rows, same process | "
                            f"{v[name]['examples_per_second']:,.0f} vs {v[against]['examples_per_second']:,.0f} examples/s "
                            f"| {v[name]['examples_per_second'] / v[against]['examples_per_second']:.2f}x |")
    p = _load("pipeline_scaling")
    if p:
        runs = p["runs"]
        figure = ", ".join(f"{r['rows']:,} rows {r['pipeline_seconds']:.0f} s ({r.get('beam_mode', '?')})"
                           for r in runs)
        rows.append(f"| Pipeline wall time | 3-day window, Evaluator on at most {p['max_eval_rows']:,} rows | {figure} "
                    f"| growth vs linear **{p['growth']['pipeline total']:.2f}** |")
        worst = max((g, n) for n, g in p["growth"].items() if n != "pipeline total"
                    and runs[-1]["components"].get(n, {}).get("seconds", 0) >= 5)
        rows.append(f"| Pipeline: steepest component | {runs[0]['rows']:,} to {runs[-1]['rows']:,} rows | {worst[1]} "
                    f"| growth vs linear {worst[0]:.2f} |")
    s = _load("simulator")
    if s:
        last = s["runs"][-1]
        rows.append(f"| Simulator | {last['rows']:,} rows as CSV | {last['rows_per_second']:,.0f} rows/s, peak "
                    f"{last['peak_rss_mib']:,.0f} MiB | rate at 10M / at 1M: {s['rate_ratio']:.2f}x |")
    e = _load("evaluator_throughput")
    if e:
        v = e["variants"]
        before = v.get("TFMA, every slice")
        for name in ("TFMA overall, every metric", "default", "default + a cross", "default, intervals on", "gates only"):
            if before and name in v:
                rows.append(f"| Evaluator: {name} vs TFMA on every slice | {e['rows']:,} rows, with the model | "
                            f"{v[name]['rows_per_second']:,.0f} vs {before['rows_per_second']:,.0f} rows/s "
                            f"| {v[name]['rows_per_second'] / before['rows_per_second']:.2f}x |")
    n = _load("gate_noise")
    if n:
        point, significant = n["rules"]["point"], n["rules"]["significant"]
        rows.append(f"| Gate: false rejections, {n['seeds']} seeds judged pairwise | {n['rows']:,} evaluated rows, "
                    f"configured thresholds | point rule {point['refused']} of {point['judgments']}, significant "
                    f"{significant['refused']} of {significant['judgments']} | {point['rate']:.0%} vs "
                    f"{significant['rate']:.0%} |")
    i = _load("id_features")
    if i and "ids" in i["runs"] and "no ids" in i["runs"]:
        ids, none = i["runs"]["ids"]["auc"], i["runs"]["no ids"]["auc"]
        s = i["setup"]
        rows.append(f"| Ids: user and item embeddings vs none | {s['train_days']} x {s['rows']:,} simulated rows, next day "
                    f"| click AUC {ids['click']:.4f} vs {none['click']:.4f}, purchase {ids['purchase']:.4f} vs "
                    f"{none['purchase']:.4f} | {ids['click'] - none['click']:+.4f} / {ids['purchase'] - none['purchase']:+.4f} |")
    w = _load("warm_chain")
    if w:
        def mean(chain, task):
            days = w["chains"][chain][1:]
            return sum(d["auc"][task] for d in days) / len(days)
        rows.append(f"| Warm start: rows by value vs by position | {w['setup']['days']} days x {w['setup']['rows']:,} "
                    f"rows, mean next-day AUC of the warm days | click {mean('by value', 'click'):.4f} vs "
                    f"{mean('by position', 'click'):.4f}, purchase {mean('by value', 'purchase'):.4f} vs "
                    f"{mean('by position', 'purchase'):.4f} | {mean('by value', 'click') - mean('by position', 'click'):+.4f} "
                    f"/ {mean('by value', 'purchase') - mean('by position', 'purchase'):+.4f} |")
    c = _load("learning_curve")
    if c:
        v, s = c["verdicts"], c["setup"]
        m, sec = v["mean_auc_on_warm_days"], v["train_seconds_on_warm_days"]
        rows.append(f"| Daily retraining: warm chain vs cold model | {s['days']} days x {s['rows']:,} rows, `mtrank backfill`, "
                    f"mean AUC of the {v['warm_days']} warm days on the whole day | click {m['warm chain']['click']:.4f} vs "
                    f"{m['cold']['click']:.4f}, purchase {m['warm chain']['purchase']:.4f} vs {m['cold']['purchase']:.4f}; "
                    f"training {sec['warm chain']:.0f} vs {sec['cold']:.0f} s; pushed {v['pushed']} "
                    f"| time {sec['warm chain'] / sec['cold'] if sec['cold'] else float('nan'):.2f}x |")
        last = c["days"][-1]
        rows.append(f"| Daily retraining: last day vs logistic regression (ids, segment×category) | day {s['days']} | "
                    f"click {last['warm chain']['auc']['click']:.4f} vs {last['logistic']['auc']['click']:.4f}, purchase "
                    f"{last['warm chain']['auc']['purchase']:.4f} vs {last['logistic']['auc']['purchase']:.4f}; days 4+ "
                    f"beating it on both: {v['days_beating_logistic_on_both_from_day_4']} | click gap to the oracle "
                    f"{v['last_day_click_gap_to_oracle']:.4f} |")
    b = _load("learnable_bound")
    if b:
        best = max((f for f in b["chosen"] if f["structure"] == "simulator's form"), key=lambda f: f["window_days"])
        rows.append(f"| Daily retraining: last day vs what the data allow | the simulator's own click model fitted to "
                    f"the {best['window_days']} days before it | click {b['ours']['warm chain']:.4f} vs "
                    f"{best['click_auc']:.4f} (oracle {b['oracle']['oracle']:.4f}) | gap to the oracle "
                    f"{b['oracle']['oracle'] - b['ours']['warm chain']:.4f} vs {b['oracle']['oracle'] - best['click_auc']:.4f} |")
    i = _load("learning_curve_ids")
    if i:
        v, s = i["verdicts"], i["setup"]
        h = v.get("last_day_against_history_cold")
        if h:
            rows.append(f"| Daily retraining with ids: last day vs a cold model on the whole history | day {s['days']}, "
                        f"{i['history_cold']['train_days']} days x {s['rows']:,} rows for the cold model | click "
                        f"{h['auc']['click']['warm chain']:.4f} vs {h['auc']['click']['history cold']:.4f}, purchase "
                        f"{h['auc']['purchase']['warm chain']:.4f} vs {h['auc']['purchase']['history cold']:.4f}; training "
                        f"{h['train_seconds']['warm chain']:.0f} vs {h['train_seconds']['history cold']:.0f} s | time "
                        f"{h['train_seconds']['warm chain'] / h['train_seconds']['history cold']:.2f}x |")
    g = _load("serving_latency")
    if g:
        for case in g["cases"]:
            rows.append(f"| Serving: gRPC vs in-process | {case['candidates']} candidates per request | p50 "
                        f"{case['grpc']['p50_ms']:.2f} vs {case['in_process']['p50_ms']:.2f} ms "
                        f"| p50 {case['ratio']['p50']:.2f}x |")
            if "rest" in case:
                rows.append(f"| Serving: REST vs gRPC | {case['candidates']} candidates per request | p50 "
                            f"{case['rest']['p50_ms']:.2f} vs {case['grpc']['p50_ms']:.2f} ms "
                            f"| p50 {case['ratio']['rest_p50']:.2f}x |")
    return "\n".join(rows) + "\n"


def readme_block(text: str) -> str:
    """The README's headline table, between the markers."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"{README}: the markers {BEGIN!r} and {END!r} are missing")
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n") + "\n"


def write_readme(table: str, path: Path = README) -> None:
    text = path.read_text()
    readme_block(text)  # the markers are there
    path.write_text(text[:text.index(BEGIN) + len(BEGIN)] + "\n" + table + text[text.index(END):])


def main() -> int:
    parts = ["# Benchmark summary", "",
             "Written by `make bench`; every ratio is measured side by side in one run on the machine below.", "",
             headline(), ""]
    for name, title in SUITE:
        md, js = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
        if not md.exists():
            parts += [f"## {title}", "", "(not run)", ""]
            continue
        machine = json.loads(js.read_text()).get("machine", {}) if js.exists() else {}
        where = f"{machine.get('cpus', '?')} CPUs, load at start {machine.get('load_average_at_start', '?')}"
        parts += [f"## {title}", "", f"_{where}; details in `{name}.json`_", "", md.read_text().strip(), ""]
    (RESULTS / "SUMMARY.md").write_text("\n".join(parts) + "\n")
    write_readme(headline())
    print(f"written to {RESULTS / 'SUMMARY.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
