"""docs/metrics.md is what tools/metrics_doc.py writes from bridge/metrics.py (`make metrics-doc`)."""

from __future__ import annotations

from prometheus_client.metrics import MetricWrapperBase

from bridge import metrics
from tools import metrics_doc


def test_committed_reference_equals_the_generator_output() -> None:
    committed = (metrics_doc.ROOT / metrics_doc.DOC).read_text(encoding="utf-8")
    assert committed == metrics_doc.metrics_markdown(), "run `make metrics-doc`"


def test_every_metric_of_bridge_metrics_has_a_row() -> None:
    text = metrics_doc.metrics_markdown()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            assert f"| `{family.name}" in text, family.name
