"""Prometheus metrics of the built-in server, named and labelled as TF Serving's, with the official client
library (prometheus_client), and the MonitoringConfig that turns them on.

TF Serving's own families (tensorflow_serving/servables/tensorflow/util.cc, exported by
util/prometheus_exporter.cc with every character outside [a-zA-Z0-9_] turned into ':'):

    :tensorflow:serving:request_count{model_name, status}            every request, errors included
    :tensorflow:serving:request_latency{model_name, API, entrypoint}  microseconds, successful requests
    :tensorflow:serving:runtime_latency{model_name, API, runtime}     microseconds inside the model

with TF Serving's buckets (Exponential(10, 1.8, 33) µs), so a dashboard written for the official image
reads this server unchanged. TF Serving labels neither version nor signature; this server adds one family
that does, `mtrank_serving_requests_total{model_name, version, signature_name, entrypoint, status}`.

Written by hand where the library cannot: prometheus_client writes every counter as `<name>_total`, and
TF Serving writes `:tensorflow:serving:request_count`; that one family is exposed by a small collector
(type `untyped`, the exact name). The monitoring config is TF Serving's own text file
(serving/config_protos.py).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Dict, Optional, Tuple

from google.protobuf import text_format
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import Metric

from serving.config_protos import MonitoringConfig

DEFAULT_PATH = "/monitoring/prometheus/metrics"  # TF Serving's kPrometheusPath
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
REQUESTS_BY_VERSION = "mtrank_serving_requests"
# TF Serving's latency buckets in microseconds: Exponential(scale 10, growth 1.8, 33 buckets), then +Inf,
# at the 6 significant digits its exporter prints (StrCat of a double).
LATENCY_BUCKETS_US = tuple(float(f"{10.0 * 1.8 ** i:.6g}") for i in range(33))




def read_monitoring_config(path: str) -> Optional[str]:
    """The Prometheus path a TF Serving monitoring config turns on, or None when it leaves metrics off."""
    try:
        with open(path) as f:
            config = text_format.Parse(f.read(), MonitoringConfig())
    except (OSError, text_format.ParseError) as e:
        raise ValueError(f"{path}: not a readable MonitoringConfig text proto: {e}") from None
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_PATH


class _RequestCount:
    """TF Serving's request counter under its exact name (see the module docstring)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[str, str], int] = defaultdict(int)

    def inc(self, model_name: str, status: str) -> None:
        with self._lock:
            self._counts[(model_name, status)] += 1

    def collect(self):
        metric = Metric(REQUEST_COUNT, "Total number of requests, by model and status (TF Serving's name).",
                        "untyped")
        with self._lock:
            for (model_name, status), count in sorted(self._counts.items()):
                metric.add_sample(REQUEST_COUNT, {"model_name": model_name, "status": status}, float(count))
        yield metric


class ServingMetrics:
    """One server's metrics in its own registry (two servers in one process do not mix their counts)."""

    def __init__(self):
        disable_created_metrics()  # TF Serving has no `_created` series; the library's switch is process-wide
        self.registry = CollectorRegistry(auto_describe=False)
        self._request_count = _RequestCount()
        self.registry.register(self._request_count)
        self._request_latency = Histogram(
            REQUEST_LATENCY, "Distribution of request latency in microseconds (TF Serving's name).",
            ["model_name", "API", "entrypoint"], buckets=LATENCY_BUCKETS_US, registry=self.registry)
        self._runtime_latency = Histogram(
            RUNTIME_LATENCY, "Distribution of the model's own run time in microseconds (TF Serving's name).",
            ["model_name", "API", "runtime"], buckets=LATENCY_BUCKETS_US, registry=self.registry)
        self._by_version = Counter(
            REQUESTS_BY_VERSION, "Requests by model, answering version, signature, entrypoint and status.",
            ["model_name", "version", "signature_name", "entrypoint", "status"], registry=self.registry)

    def request(self, model_name: str, api: str, entrypoint: str, status: str, seconds: float,
                version: Optional[int] = None, signature_name: str = "", tf_serving: bool = True) -> None:
        """One answered request: `status` is the gRPC code's name (OK, INVALID_ARGUMENT, ...); the latency
        counts only for OK, as in TF Serving. `tf_serving`: whether TF Serving's families count it too."""
        self._by_version.labels(model_name, "" if version is None else str(version), signature_name, entrypoint,
                                status).inc()
        if not tf_serving:
            return
        self._request_count.inc(model_name, status)
        if status == "OK":
            self._request_latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def runtime(self, model_name: str, api: str, seconds: float) -> None:
        self._runtime_latency.labels(model_name, api, "TF2").observe(seconds * 1e6)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
