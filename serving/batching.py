"""Request batching across concurrent requests, as TF Serving's --enable_batching does it, configured by the
same `batching_parameters.txt` (BatchingParameters) the official image reads.

Requests to one signature of one version join an open batch until it holds `max_batch_size` candidates
(the sum of the requests' first dimensions, TF Serving's task size) or `batch_timeout_micros` passed
since its first request; one of `num_batch_threads` threads then runs the model once on the
concatenated inputs and hands each request its rows. At most `max_enqueued_batches` batches wait; a
request finding the queue full gets UNAVAILABLE, as in TF Serving. A request larger than
`max_batch_size` is refused (INVALID_ARGUMENT, TF Serving's words). With `enable_large_batch_splitting`,
`max_batch_size` bounds a request and `max_execution_batch_size` a merged run; a request larger than the
latter runs alone (the answer TF Serving's split gives, without the split).

Written here because TensorFlow's batching ops (BatchFunction) must be compiled into the exported
graph, and TF Serving's scheduler is C++ inside its binary. One deliberate difference: when a merged
batch fails (one request's NaN price trips the input guard), TF Serving fails every request in it; here
each request of that batch is re-run alone, so only the request at fault gets the error.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Mapping, Optional

import grpc
import numpy as np
from google.protobuf import text_format

from serving.config_protos import BatchingParameters
from serving.servable import ServingStatus

Arrays = Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's defaults for fields a file leaves out (TensorFlow's SharedBatchScheduler options)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 4
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0  # with splitting: the largest merged run (0: max_batch_size)

    @property
    def execution_limit(self) -> int:
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return min(self.max_execution_batch_size, self.max_batch_size)
        return self.max_batch_size

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"batching parameter {name} must be >= 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batching parameter batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")


def read_batching_parameters(path: str) -> BatchingConfig:
    """A BatchingParameters text proto (`max_batch_size { value: 128 }`...), as --batching_parameters_file."""
    try:
        with open(path) as f:
            parsed = text_format.Parse(f.read(), BatchingParameters())
    except (OSError, text_format.ParseError) as e:
        raise ValueError(f"{path}: not a readable BatchingParameters text proto: {e}") from None
    given = {f.name: getattr(parsed, f.name).value for f in BatchingParameters.DESCRIPTOR.fields
             if f.message_type is not None and parsed.HasField(f.name)
             and f.name in BatchingConfig.__dataclass_fields__}
    try:
        return BatchingConfig(**given)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


@dataclasses.dataclass
class _Task:
    inputs: Arrays
    size: int
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    outputs: Optional[Arrays] = None
    error: Optional[BaseException] = None


@dataclasses.dataclass
class _Batch:
    opened: float
    tasks: List[_Task] = dataclasses.field(default_factory=list)
    size: int = 0
    closed: bool = False


class Batcher:
    """Merges concurrent calls of `run` (inputs -> outputs, first dimension = candidates)."""

    def __init__(self, run: Callable[[Arrays], Arrays], config: BatchingConfig, name: str = ""):
        self._run, self.config, self.name = run, config, name
        self._cv = threading.Condition()
        self._queue: Deque[_Batch] = deque()
        self._stopping = False
        self.batches_run = 0  # for tests and benchmarks: how many merged runs there were
        self._threads = [threading.Thread(target=self._work, name=f"batch-{name}-{i}", daemon=True)
                         for i in range(config.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Mapping[str, np.ndarray]) -> Arrays:
        """Blocks until the batch holding this request ran; returns this request's rows of every output."""
        # TF Serving's batching session refuses what it cannot concatenate (batching_util.h), so a signature
        # that only works unbatched fails here as it would fail on the official image with --enable_batching.
        if any(np.ndim(v) == 0 for v in inputs.values()):
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                "Batching Run() input tensors must have at least one dimension")
        sizes = {np.shape(v)[0] for v in inputs.values()}
        if len(sizes) > 1:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                "Batching Run() input tensors must have equal 0th-dimension size")
        size = sizes.pop() if sizes else 0
        if size > self.config.max_batch_size:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"Task size {size} is larger than maximum input batch size "
                                f"{self.config.max_batch_size} (batching_parameters.txt max_batch_size)")
        if size > self.config.execution_limit:
            return self._run(dict(inputs))  # TF Serving splits it; the answer is the same
        task = _Task(dict(inputs), size)
        with self._cv:
            if self._stopping:  # checked under the lock: close() may have let the threads go
                task = None
            else:
                self._enqueue(task, size)
        if task is None:
            return self._run(dict(inputs))  # an unloaded version's straggler
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def _enqueue(self, task: _Task, size: int) -> None:
        """Adds `task` to the open batch, or opens one (caller holds the lock)."""
        limit = self.config.execution_limit
        last = self._queue[-1] if self._queue else None
        if last is None or last.closed or last.size + size > limit:
            if last is not None:
                last.closed = True
            if len(self._queue) >= self.config.max_enqueued_batches:
                raise ServingStatus(grpc.StatusCode.UNAVAILABLE,
                                    "The batch scheduling queue to which this task was submitted is full "
                                    f"({self.config.max_enqueued_batches} batches, max_enqueued_batches)")
            last = _Batch(opened=time.monotonic())
            self._queue.append(last)
        last.tasks.append(task)
        last.size += size
        if last.size >= limit:
            last.closed = True
        self._cv.notify_all()

    def _next_batch(self) -> Optional[_Batch]:
        timeout = self.config.batch_timeout_micros / 1e6
        with self._cv:
            while True:
                if self._queue:
                    head = self._queue[0]
                    wait = head.opened + timeout - time.monotonic()
                    if head.closed or wait <= 0 or self._stopping:
                        head.closed = True
                        return self._queue.popleft()
                    self._cv.wait(wait)
                elif self._stopping:
                    return None
                else:
                    self._cv.wait()

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._execute(batch)

    def _execute(self, batch: _Batch) -> None:
        self.batches_run += 1
        tasks = batch.tasks
        try:
            if len(tasks) == 1:
                tasks[0].outputs = self._run(tasks[0].inputs)
            else:
                merged = {k: np.concatenate([t.inputs[k] for t in tasks]) for k in tasks[0].inputs}
                outputs = self._run(merged)
                bounds = np.cumsum([0] + [t.size for t in tasks])
                uneven = [k for k, v in outputs.items() if np.shape(v)[:1] != (bounds[-1],)]
                if uneven:  # an output not one row per input row cannot be split back: run each alone
                    raise ValueError(f"outputs {uneven} do not have one row per input row")
                for t, start, end in zip(tasks, bounds[:-1], bounds[1:]):
                    t.outputs = {k: v[start:end] for k, v in outputs.items()}
        except BaseException as e:  # noqa: BLE001 - every waiting request must be answered
            if len(tasks) == 1:
                tasks[0].error = e
            else:
                for t in tasks:  # only the request at fault keeps the error
                    try:
                        t.outputs = self._run(t.inputs)
                    except BaseException as alone:  # noqa: BLE001
                        t.error = alone
        finally:
            for t in tasks:
                t.done.set()

    def close(self) -> None:
        """Runs what is queued, then stops the threads; later calls run unbatched."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
