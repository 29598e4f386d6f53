"""Generated bodies and header sets through the real receiver and a real broker.

FUZZ_EXAMPLES (default 100,000) examples, split among FUZZ_WORKERS processes (default: the CPUs this process
may use, 2 to 4) of tests/fuzz/worker.py, each with its own in-process bridge and fixed seed, all publishing
to the same topics: drawing examples is CPU-bound and single-threaded, so one process took ~17 minutes
with the second core idle. Properties: never a 5xx, never an exception, 401 exactly when the signature does
not verify (checked in the workers), and every authenticated delivery ends up in Kafka (its topic or the
dead-letter topic).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ROOT, consume_all, topic_names
from tests.figures import record_figure

pytestmark = pytest.mark.kafka

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100000"))
WORKERS = int(os.environ.get("FUZZ_WORKERS", "0")) or min(4, max(2, len(os.sched_getaffinity(0))))
#: Under the test's own timeout, so that a hung worker fails with its output rather than pytest-timeout's
#: bare stack dump.
WORKERS_DEADLINE_SECONDS = 1080
#: Of each failed worker's output: hypothesis's falsifying example and the traceback come last.
OUTPUT_TAIL_CHARS = 20_000


@dataclass
class Worker:
    """One `python -m tests.fuzz.worker` process, its output file and its report."""

    index: int
    command: list[str]
    output: Path
    report: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)

    def describe(self, what: str) -> str:
        tail = self.output.read_text(errors="replace")[-OUTPUT_TAIL_CHARS:]
        rerun = shlex.join(self.command)
        return f"fuzz worker {self.index} {what}; rerun it alone (from {ROOT}):\n{rerun}\n{tail}"


def start_workers(tmp_path: Path, bootstrap: str, prefix: str) -> list[Worker]:
    workers = []
    for index in range(WORKERS):
        share = EXAMPLES // WORKERS + (index < EXAMPLES % WORKERS)
        workdir = tmp_path / f"worker{index}"
        report = workdir / "report.json"
        command = [sys.executable, "-m", "tests.fuzz.worker", "--bootstrap", bootstrap]
        command += ["--topic-prefix", prefix, "--seed", str(index), "--examples", str(share)]
        command += ["--workdir", str(workdir), "--report", str(report)]
        workers.append(Worker(index, command, tmp_path / f"worker{index}.log", report))
    for worker in workers:
        worker.start()
    return workers


def wait_for(workers: list[Worker]) -> list[dict[str, Any]]:
    """Every worker's report; the first failure, or the deadline, kills the others and fails the test."""
    deadline = time.monotonic() + WORKERS_DEADLINE_SECONDS
    try:
        while True:
            running = False
            for worker in workers:
                assert worker.process is not None
                code = worker.process.poll()
                if code is None:
                    running = True
                elif code != 0:
                    pytest.fail(worker.describe(f"exited {code}"), pytrace=False)
            if not running:
                return [json.loads(worker.report.read_text()) for worker in workers]
            if time.monotonic() > deadline:
                hung = next(w for w in workers if w.process is not None and w.process.poll() is None)
                assert hung.process is not None
                hung.process.send_signal(signal.SIGABRT)  # its faulthandler writes where each thread is
                with contextlib.suppress(subprocess.TimeoutExpired):
                    hung.process.wait(timeout=10)
                pytest.fail(hung.describe(f"still ran after {WORKERS_DEADLINE_SECONDS} s"), pytrace=False)
            time.sleep(0.5)
    finally:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


@pytest.mark.timeout(1200)
def test_generated_deliveries_never_5xx_and_every_authenticated_one_lands(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    reports = wait_for(start_workers(tmp_path, kafka_bootstrap, topic_prefix))
    statuses: Counter[int] = Counter()
    published: set[str] = set()
    deadlettered = 0
    for report in reports:
        statuses.update({int(status): count for status, count in report["statuses"].items()})
        published.update(report["published"])
        deadlettered += report["deadlettered"]
    total = sum(statuses.values())
    assert total >= EXAMPLES * 0.9
    assert published and deadlettered
    topics = topic_names(topic_prefix)
    wanted = len(published) + deadlettered
    messages = consume_all(kafka_bootstrap, topics.values(), expected=wanted, timeout=120)
    deadletter = topics["deadletter"]
    found = {json.loads(m.value() or b"{}").get("id") for m in messages if m.topic() != deadletter}
    found_deadletters = sum(1 for m in messages if m.topic() == deadletter)
    missing = published - found
    record_figure(
        f"[fuzz] examples={total} workers={WORKERS} statuses={dict(sorted(statuses.items()))} "
        f"published_ids={len(published)} found={len(published & found)} missing={len(missing)} "
        f"deadlettered={deadlettered} deadletters_found={found_deadletters}"
    )
    assert not missing, f"{len(missing)} published ids are not in Kafka, e.g. {sorted(missing)[:5]}"
    assert found_deadletters >= deadlettered
