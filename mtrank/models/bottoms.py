"""The architectures ("bottoms"): how the shared input becomes one representation per task.

Each bottom only wires the blocks of `layers` (experts, gates, `mix`); none re-implements them. A bottom
returns, per task, the representation its tower reads, the gate weights that made it, and a label for
each expert those weights are over (for the gate diagnostics table).

  shared_bottom  one shared network, every task reads it (a gate fixed at 1 on its one expert)
  omoe           N shared experts, one gate shared by all tasks (Ma et al. 2018, "one-gate MoE")
  mmoe           N shared experts, one gate per task (Ma et al., KDD 2018)
  cgc            per-task experts + shared experts, one gate per task over its own and the shared
                 experts (Tang et al., RecSys 2020)
  ple            `levels` CGC extraction levels; between levels a shared gate over all experts feeds
                 the next level's shared experts. `ple` with one level is `cgc`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Sequence

import mtrank  # noqa: F401
import tensorflow as tf

from mtrank import config as config_lib
from mtrank.models import layers


@dataclasses.dataclass
class BottomOutput:
    reps: Dict[str, tf.Tensor]  # task -> [B, U], the tower's input
    gates: Dict[str, tf.Tensor]  # task -> [B, N_task], rows sum to 1
    experts: Dict[str, List[str]]  # task -> label of each of the N_task experts its gate weighs


Bottom = Callable[[config_lib.ModelSpec, Sequence[str], tf.Tensor], BottomOutput]


def _experts(m: config_lib.ModelSpec, n: int, seed: int, name: str) -> layers.Experts:
    return layers.Experts(n, m.expert_units, dropout=m.dropout, l2=m.l2, seed=seed, name=name)


def shared_bottom(m: config_lib.ModelSpec, tasks: Sequence[str], shared: tf.Tensor) -> BottomOutput:
    """One shared network of `expert_units` (widen it to compare at equal parameter count)."""
    network = _experts(m, 1, m.seed, "experts")(shared)
    gate = layers.SoleExpertGate(name="gate")(shared)
    rep = layers.mix(network, gate)
    return BottomOutput({t: rep for t in tasks}, {t: gate for t in tasks}, {t: ["shared_0"] for t in tasks})


def omoe(m: config_lib.ModelSpec, tasks: Sequence[str], shared: tf.Tensor) -> BottomOutput:
    experts = _experts(m, m.num_experts, m.seed, "experts")(shared)
    gate = layers.Gate(m.num_experts, m.gate_units, seed=m.seed, name="gate")(shared)
    rep = layers.mix(experts, gate)
    labels = [f"shared_{i}" for i in range(m.num_experts)]
    return BottomOutput({t: rep for t in tasks}, {t: gate for t in tasks}, {t: labels for t in tasks})


def mmoe(m: config_lib.ModelSpec, tasks: Sequence[str], shared: tf.Tensor) -> BottomOutput:
    experts = _experts(m, m.num_experts, m.seed, "experts")(shared)
    labels = [f"shared_{i}" for i in range(m.num_experts)]
    gates = {t: layers.Gate(m.num_experts, m.gate_units, seed=m.seed, name=f"gate_{t}")(shared) for t in tasks}
    return BottomOutput({t: layers.mix(experts, gates[t]) for t in tasks}, gates, {t: labels for t in tasks})


def _extraction_level(m: config_lib.ModelSpec, tasks: Sequence[str], task_inputs: Dict[str, tf.Tensor],
                      shared_input: tf.Tensor, level: int, last: bool):
    """One CGC level. Returns (task outputs, task gates, expert labels, next level's shared input or None)."""
    shared_experts = _experts(m, m.num_experts, m.seed, f"experts_shared_l{level}")(shared_input)
    own = {t: _experts(m, m.task_experts, m.seed, f"experts_{t}_l{level}")(task_inputs[t]) for t in tasks}
    shared_labels = [f"shared_{i}" for i in range(m.num_experts)]
    outputs, gates, labels = {}, {}, {}
    for t in tasks:
        gates[t] = layers.Gate(m.task_experts + m.num_experts, m.gate_units, seed=m.seed,
                               name=f"gate_{t}_l{level}")(task_inputs[t])
        outputs[t] = layers.mix(layers.pool([own[t], shared_experts]), gates[t])
        labels[t] = [f"{t}_{i}" for i in range(m.task_experts)] + shared_labels
    next_shared = None
    if not last:  # PLE: the shared experts of the next level read a mix of every expert of this one
        shared_gate = layers.Gate(len(tasks) * m.task_experts + m.num_experts, m.gate_units, seed=m.seed,
                                  name=f"gate_shared_l{level}")(shared_input)
        next_shared = layers.mix(layers.pool([own[t] for t in tasks] + [shared_experts]), shared_gate)
    return outputs, gates, labels, next_shared


def ple(m: config_lib.ModelSpec, tasks: Sequence[str], shared: tf.Tensor) -> BottomOutput:
    task_inputs = {t: shared for t in tasks}
    shared_input = shared
    levels = m.extraction_levels
    for level in range(levels):
        task_inputs, gates, labels, shared_input = _extraction_level(
            m, tasks, task_inputs, shared_input, level, last=level == levels - 1)
    return BottomOutput(task_inputs, gates, labels)


def cgc(m: config_lib.ModelSpec, tasks: Sequence[str], shared: tf.Tensor) -> BottomOutput:
    """Customized Gate Control: PLE's single extraction level."""
    return ple(dataclasses.replace(m, levels=1), tasks, shared)


ARCHITECTURES: Dict[str, Bottom] = {
    "shared_bottom": shared_bottom,
    "omoe": omoe,
    "mmoe": mmoe,
    "cgc": cgc,
    "ple": ple,
}
