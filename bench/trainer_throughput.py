"""Trainer throughput: the project's training path against the MMoE most users start from, side by side.

Both train the configured model (same features, towers, heads, losses, optimizer, learning rate, seed)
on the same transformed rows in the same process; they differ only in how the MMoE block is written and
how examples reach it:

  naive      the Keras MMoE layer of the usual notebook (experts a Python list of Dense layers, gates
             applied in a loop), `model.fit` from in-memory NumPy arrays, batch `model.batch_size`
  ...        one change at a time towards the project's path: experts and gates as batched einsums
             (`mtrank.models.layers`), tf.data from TFXIO over Transform's output (the Trainer's own
             `input_fn`), several steps per call into the graph, XLA, larger batches
  project    what `components/trainer.py` runs with the configuration as it is

Throughput is examples per second over the epochs after the first (median; the first one also pays for
tracing, and is reported on its own). Quality is the
loss on a held-out day after the same number of examples. The rows come from the real components:
simulated days -> CsvExampleGen -> Transform (a three-component pipeline in a temporary folder).

    .venv/bin/python bench/trainer_throughput.py [--train-rows 100000] [--epochs 3]

Writes bench/results/trainer_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import glob
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402
from tfx import v1 as tfx  # noqa: E402

from bench import common  # noqa: E402
from components import trainer  # noqa: E402
from components.preprocessing import CONFIG_KEY  # noqa: E402
from mtrank import config as config_lib, simulate  # noqa: E402
from mtrank.models import bottoms, builder, layers  # noqa: E402

NAIVE = "naive_mmoe"


# ---- the baseline: the MMoE layer of the usual notebook --------------------------------------------------

class NaiveMMoE(keras.layers.Layer):
    """Experts as a Python list of Dense stacks, one softmax gate per task applied in a loop."""

    def __init__(self, expert_units: Sequence[int], num_experts: int, num_tasks: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.experts = [[keras.layers.Dense(u, activation="relu",
                                            kernel_initializer=keras.initializers.GlorotUniform(seed + 10 * e + j))
                         for j, u in enumerate(expert_units)] for e in range(num_experts)]
        self.gates = [keras.layers.Dense(num_experts, activation="softmax",
                                         kernel_initializer=keras.initializers.GlorotUniform(seed + 101 + t))
                      for t in range(num_tasks)]

    def call(self, x):
        expert_outputs = []
        for expert in self.experts:
            h = x
            for dense in expert:
                h = dense(h)
            expert_outputs.append(h)
        stacked = tf.stack(expert_outputs, axis=1)  # [B, N, U]
        outputs, gate_weights = [], []
        for gate in self.gates:
            g = gate(x)
            gate_weights.append(g)
            outputs.append(tf.reduce_sum(stacked * tf.expand_dims(g, -1), axis=1))
        return outputs, gate_weights


def naive_mmoe(m: config_lib.ModelSpec, tasks: Sequence[str], shared: tf.Tensor) -> bottoms.BottomOutput:
    reps, gates = NaiveMMoE(m.expert_units, m.num_experts, len(tasks), m.seed, name="naive_mmoe")(shared)
    labels = [f"shared_{i}" for i in range(m.num_experts)]
    return bottoms.BottomOutput(dict(zip(tasks, reps)), dict(zip(tasks, gates)), {t: labels for t in tasks})


bottoms.ARCHITECTURES[NAIVE] = naive_mmoe  # the builder's towers, heads and losses around it, unchanged


# ---- the rows: simulated days through the real CsvExampleGen and Transform -------------------------------

@dataclasses.dataclass
class TransformedData:
    train_files: List[str]
    eval_files: List[str]
    transform_output: tft.TFTransformOutput


def transformed_data(cfg: config_lib.Config, workdir: Path, train_rows: int, eval_rows: int) -> TransformedData:
    data_root = workdir / "data"
    train_day, eval_day = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    simulate.simulate(data_root, train_day, 1, train_rows)
    simulate.simulate(data_root, eval_day, 1, eval_rows)
    splits = [tfx.proto.Input.Split(name="train", pattern=f"{simulate.day_folder(train_day)}/*.csv"),
              tfx.proto.Input.Split(name="eval", pattern=f"{simulate.day_folder(eval_day)}/*.csv")]
    example_gen = tfx.components.CsvExampleGen(input_base=str(data_root), input_config=tfx.proto.Input(splits=splits))
    schema = tfx.components.ImportSchemaGen(schema_file=cfg.resolve_path(cfg.data.schema))
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema.outputs["schema"],
        preprocessing_fn="components.preprocessing.preprocessing_fn",
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=["train", "eval"]),
        custom_config={CONFIG_KEY: cfg.to_json()})
    root = workdir / "pipeline_root"
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="trainer-bench", pipeline_root=str(root), components=[example_gen, schema, transform],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(workdir / "metadata.sqlite")),
        beam_pipeline_args=["--direct_running_mode=in_memory"]))
    examples = glob.glob(str(root / "Transform" / "transformed_examples" / "*"))[0]
    graph = glob.glob(str(root / "Transform" / "transform_graph" / "*"))[0]
    return TransformedData(train_files=[os.path.join(examples, "Split-train", "*")],
                           eval_files=[os.path.join(examples, "Split-eval", "*")],
                           transform_output=tft.TFTransformOutput(graph))


def tfxio_dataset(cfg: config_lib.Config, data: TransformedData, files: List[str], batch_size: int,
                  shuffle: bool, num_examples: Optional[int] = None) -> tf.data.Dataset:
    return trainer.input_fn(cfg, files, common.TFXIOAccessor(), data.transform_output, batch_size, shuffle, num_examples)


def in_memory_arrays(cfg: config_lib.Config, data: TransformedData, files: List[str]):
    """All rows as NumPy arrays (features, labels, weights): what a notebook holds, what the Trainer loads."""
    return trainer.load_examples(cfg, files, common.TFXIOAccessor(), data.transform_output)


# ---- the variants -----------------------------------------------------------------------------------------

# The notebook's settings: batch 128 at Adam 0.005 (this project's defaults before this benchmark).
NOTEBOOK_BATCH, NOTEBOOK_LR = 128, 0.005


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    description: str
    architecture: str  # NAIVE or the configured one
    input: str  # numpy: model.fit(arrays) | stream: TFXIO every epoch | memory: the Trainer's in-memory dataset
    batch_size: int
    learning_rate: float
    steps_per_execution: int = 1
    jit_compile: bool = False
    optimizer: str = "adam"  # model.optimizer: the notebook's tf_keras Adam unless the variant says otherwise


def variants(cfg: config_lib.Config) -> List[Variant]:
    m = cfg.model
    arch, b, lr = m.architecture, NOTEBOOK_BATCH, NOTEBOOK_LR
    return [
        Variant("naive", f"list-of-Dense experts, gates in a loop; model.fit(NumPy arrays); batch {b}", NAIVE,
                "numpy", b, lr),
        Variant("einsum", "experts and gates as batched einsums; model.fit(NumPy arrays)", arch, "numpy", b, lr),
        Variant("tfxio_stream", "einsum; tf.data from TFXIO every epoch (32 batches parsed at once, prefetch)", arch,
                "stream", b, lr),
        Variant("in_memory", "einsum; split read once through TFXIO, batches gathered in tf.data", arch, "memory", b,
                lr),
        Variant("steps_per_execution", "in_memory + 32 steps per call into the graph", arch, "memory", b, lr, 32),
        Variant("xla", "in_memory + 32 steps per call + XLA (jit_compile)", arch, "memory", b, lr, 32, True),
        Variant("naive_batch_1024", "naive at batch 1024, Adam 0.01: the batch size alone", NAIVE, "numpy", 1024, 0.01),
        Variant("project_adam", "the configuration, but tf_keras's Adam, which updates every row of the id tables "
                                "on every step", arch, "memory" if m.examples_in_memory else "stream", m.batch_size,
                m.learning_rate, m.steps_per_execution, m.jit_compile, "adam"),
        Variant("project", f"the configuration: {'in_memory' if m.examples_in_memory else 'tfxio_stream'}, "
                           f"{m.steps_per_execution} steps per call, jit_compile {m.jit_compile}, batch "
                           f"{m.batch_size}, {m.optimizer} {m.learning_rate}", arch,
                "memory" if m.examples_in_memory else "stream", m.batch_size, m.learning_rate, m.steps_per_execution,
                m.jit_compile, m.optimizer),
    ]


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: List[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


def run_variant(cfg: config_lib.Config, v: Variant, data: TransformedData, arrays, eval_arrays, rows: int,
                epochs: int) -> Dict:
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, architecture=v.architecture, batch_size=v.batch_size,
                                                learning_rate=v.learning_rate,
                                                steps_per_execution=v.steps_per_execution,
                                                jit_compile=v.jit_compile, optimizer=v.optimizer,
                                                examples_in_memory=v.input == "memory"))
    keras.backend.clear_session()
    net = builder.build(cfg, trainer.cardinalities(cfg, data.transform_output))
    trainee = trainer.compile_for_training(cfg, net)
    layers.add_admission_counts(cfg, net.model, trainer.in_memory_dataset(arrays, 8192, False, 0))  # as the Trainer
    timer = _EpochTimer()
    if v.input == "numpy":
        x, y, w = arrays
        history = trainee.fit(x, y, sample_weight=w, batch_size=v.batch_size, epochs=epochs, shuffle=True,
                              verbose=0, callbacks=[timer])
    else:
        dataset = (tfxio_dataset(cfg, data, data.train_files, v.batch_size, shuffle=True, num_examples=rows)
                   if v.input == "stream" else
                   trainer.in_memory_dataset(arrays, v.batch_size, shuffle=True, seed=cfg.model.seed))
        history = trainee.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    x, y, w = eval_arrays
    eval_loss = float(trainee.evaluate(x, y, sample_weight=w, batch_size=4096, verbose=0, return_dict=True)["loss"])
    return {"variant": v.name, "description": v.description, "input": v.input, "batch_size": v.batch_size,
            "learning_rate": v.learning_rate,
            "steps_per_execution": v.steps_per_execution, "jit_compile": v.jit_compile, "optimizer": v.optimizer,
            "parameters": int(net.model.count_params()), "epoch_seconds": [round(s, 3) for s in timer.seconds],
            "examples_per_second": rows / float(np.median(timer.seconds[1:] or timer.seconds)),
            "first_epoch_examples_per_second": rows / timer.seconds[0],
            "train_loss": [float(x) for x in history.history["loss"]], "eval_loss": eval_loss}


def markdown(results: Dict) -> str:
    base = results["variants"][0]
    lines = [f"Trainer throughput, {results['train_rows']:,} training rows, {results['epochs']} epochs, eval loss on "
             f"{results['eval_rows']:,} rows of the next day; examples/s = median over epochs 2..{results['epochs']}; "
             "ratio against `naive`.",
             "", "| variant | what changes | batch | examples/s | ratio | first epoch ex/s | eval loss | Δ loss |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results["variants"]:
        lines.append(f"| {r['variant']} | {r['description']} | {r['batch_size']} | {r['examples_per_second']:,.0f} "
                     f"| {r['examples_per_second'] / base['examples_per_second']:.2f}x "
                     f"| {r['first_epoch_examples_per_second']:,.0f} | {r['eval_loss']:.4f} "
                     f"| {r['eval_loss'] - base['eval_loss']:+.4f} |")
    project = results["variants"][-1]
    lines += ["", f"**{project['variant']} / {base['variant']}: {project['examples_per_second'] / base['examples_per_second']:.2f}x "
              f"the examples/s, eval loss {project['eval_loss']:.4f} against {base['eval_loss']:.4f} "
              f"({project['eval_loss'] - base['eval_loss']:+.4f}) after the same {results['epochs']} x "
              f"{results['train_rows']:,} examples.** Reading the split into memory (once per Trainer run, "
              f"through TFXIO) took {results['load_into_memory_seconds']} s."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    config_lib.add_config_argument(parser)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--eval-rows", type=int, default=25_000)
    parser.add_argument("--epochs", type=int, default=3,
                        help="all but the first (which traces) are timed; the median counts (default: %(default)s)")
    parser.add_argument("--variants", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)
    cfg = config_lib.load(args.config)
    started = time.time()
    results = {"machine": common.machine(), "config": str(cfg.source), "architecture": cfg.model.architecture,
               "train_rows": args.train_rows, "eval_rows": args.eval_rows, "epochs": args.epochs, "variants": []}
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as tmp:
        print(f"[trainer bench] simulating {args.train_rows:,} + {args.eval_rows:,} rows, CsvExampleGen + Transform",
              flush=True)
        t0 = time.time()
        data = transformed_data(cfg, Path(tmp), args.train_rows, args.eval_rows)
        results["prepare_seconds"] = round(time.time() - t0, 1)
        t0 = time.perf_counter()
        arrays = in_memory_arrays(cfg, data, data.train_files)
        results["load_into_memory_seconds"] = round(time.perf_counter() - t0, 2)  # paid once per Trainer run
        eval_arrays = in_memory_arrays(cfg, data, data.eval_files)
        rows = len(next(iter(arrays[0].values())))
        chosen = [v for v in variants(cfg) if not args.variants or v.name in args.variants.split(",")]
        for i, v in enumerate(chosen, 1):
            r = run_variant(cfg, v, data, arrays, eval_arrays, rows, args.epochs)
            results["variants"].append(r)
            base = results["variants"][0]
            print(f"[trainer bench {i}/{len(chosen)}] {v.name:<20} {r['examples_per_second']:>9,.0f} ex/s "
                  f"({r['examples_per_second'] / base['examples_per_second']:.2f}x {base['variant']}), "
                  f"epochs {r['epoch_seconds']} s, eval loss {r['eval_loss']:.4f}", flush=True)
    results["seconds"] = round(time.time() - started, 1)
    common.write("trainer_throughput", results, markdown(results), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
