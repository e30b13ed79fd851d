"""Beam arguments for the pipeline's data processing, chosen by one setting: `kubeflow.beam_runner`.

ExampleGen, StatisticsGen, ExampleValidator, Transform and Evaluator run on Beam. `direct` keeps them
inside each component's pod; `dataflow`, `flink` and `spark` send them to a cluster. Each preset sets
what that runner needs to find this project's code (the pipeline image) and checks that the settings
without which it cannot start are there; `kubeflow.beam_options` adds or overrides any flag.
"""

from __future__ import annotations

from typing import Any, Dict, List

from mtrank import config as config_lib

# The portable runners (Flink, Spark) start SDK workers from a worker pool next to the task managers or
# executors (the pipeline image run with --worker_pool, see docs/kubeflow.md).
_PORTABLE_WORKERS = {"environment_type": "EXTERNAL", "environment_config": "localhost:50000"}

PRESETS: Dict[str, Dict[str, Any]] = {
    "direct": {"runner": "DirectRunner", "direct_running_mode": "multi_processing", "direct_num_workers": 0},
    # The pipeline image is built on the TFX image, itself a Beam SDK image: Dataflow workers run it, so
    # preprocessing_fn (components.preprocessing) is importable there.
    "dataflow": {"runner": "DataflowRunner", "sdk_container_image": "{image}"},
    "flink": {"runner": "FlinkRunner", **_PORTABLE_WORKERS},
    "spark": {"runner": "SparkRunner", **_PORTABLE_WORKERS},
}
REQUIRED: Dict[str, tuple] = {
    "direct": (),
    "dataflow": ("project", "region", "temp_location"),
    "flink": ("flink_master",),
    "spark": ("spark_master_url",),
}


def options(cfg: config_lib.Config, image: str) -> Dict[str, Any]:
    """The runner's preset merged with `kubeflow.beam_options`; names the missing setting."""
    kf = cfg.kubeflow
    merged = {k: (v.format(image=image) if isinstance(v, str) else v) for k, v in PRESETS[kf.beam_runner].items()}
    merged.update(kf.beam_options)
    missing = [k for k in REQUIRED[kf.beam_runner] if merged.get(k) in (None, "")]
    if missing:
        raise config_lib.ConfigError(
            f"{cfg.source}: kubeflow.beam_runner is {kf.beam_runner!r}, which needs "
            + ", ".join(f"kubeflow.beam_options.{k}" for k in missing) + " (docs/kubeflow.md lists them)")
    return merged


def to_args(opts: Dict[str, Any]) -> List[str]:
    """{'runner': 'X', 'experiments': ['a', 'b'], 'save_main_session': True} -> ['--runner=X', ...]."""
    args = []
    for key, value in opts.items():
        for v in value if isinstance(value, list) else [value]:
            if v is True:
                args.append(f"--{key}")
            elif v is not False and v is not None:
                args.append(f"--{key}={v}")
    return args


def beam_args(cfg: config_lib.Config, image: str) -> List[str]:
    """Pipeline-level Beam arguments for the configured runner."""
    return to_args(options(cfg, image))
