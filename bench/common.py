"""What every benchmark of the suite shares: the machine it ran on, writing <name>.json + <name>.md, and the
TFXIO reader the Trainer's input functions take outside a TFX run."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Dict

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> Dict:
    """Enough to tell two runs' machines apart; the load average says whether the cores were shared."""
    import tensorflow as tf

    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 2**20
    except OSError:
        mem_gib = None
    return {"cpus": os.cpu_count(), "memory_gib": round(mem_gib, 1) if mem_gib else None,
            "python": platform.python_version(), "tensorflow": tf.__version__, "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "date": dt.datetime.now().isoformat(timespec="seconds")}


def write(name: str, results: Dict, markdown: str, out: Path = RESULTS) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results.setdefault("machine", {})["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(f"\n{markdown}\nwritten to {out}/{name}.json and {name}.md", flush=True)


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure as the PNG beside a benchmark's markdown."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class TFXIOAccessor:
    """The part of TFX's DataAccessor that `components.trainer` uses (`tf_dataset_factory`), over the same
    TFXIO reader, for benchmarks that call the Trainer's code without a TFX Trainer component."""

    @staticmethod
    def tf_dataset_factory(file_pattern, options, schema):
        from tfx_bsl.public import tfxio  # imported here: the summary and the simulator bench need no TFX

        return tfxio.TFExampleRecord(file_pattern, schema=schema).TensorFlowDataset(options)


def run_fn_args(cfg, run, out: str, base_model=None):
    """The Trainer's FnArgs for a finished pipeline run's Transform output, as the Trainer component builds
    them: the window's train splits newest first (components/window.py), the evaluated day as `eval`, the
    run's transform graph and schema; the model and its run folder under `out`. For benchmarks that call
    `components.trainer.train` on the pipeline's own data (cold with `base_model=None`, else warm from it)."""
    import glob as glob_lib

    from tfx import v1 as tfx

    from components import window
    from components.preprocessing import CONFIG_KEY

    transform = run.components["Transform"]
    examples = transform.outputs["transformed_examples"][0]
    schema = glob_lib.glob(os.path.join(run.components["ImportSchemaGen"].outputs["schema"][0], "*.pbtxt"))[0]
    splits = [os.path.join(examples, f"Split-{s}") for s in window.train_splits(cfg.data.train_days)]
    return tfx.components.FnArgs(
        train_files=[os.path.join(s, "*") for s in splits if os.path.isdir(s)],  # a run near the data's start has fewer
        eval_files=[os.path.join(examples, f"Split-{window.EVAL_SPLIT}", "*")],
        transform_graph_path=transform.outputs["transform_graph"][0], schema_path=schema,
        serving_model_dir=os.path.join(out, "serving"), model_run_dir=os.path.join(out, "run"),
        data_accessor=TFXIOAccessor(), base_model=base_model, custom_config={CONFIG_KEY: cfg.to_json()})


def without_ids(cfg):
    """The configuration without its id features (kind `id`) and the interactions that read them: the no-id
    model the id benchmarks compare against."""
    import dataclasses

    from mtrank import feature_kinds

    ids = {f.name for f in cfg.features if isinstance(feature_kinds.of(f), feature_kinds.IdKind)}
    return cfg.replace(features=[f for f in cfg.features if f.name not in ids],
                       model=dataclasses.replace(cfg.model, interactions=[
                           list(p) for p in cfg.model.interactions if not ids & set(p)]))
