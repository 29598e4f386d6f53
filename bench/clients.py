"""The two load generators: wrk for closed-loop runs (N keep-alive connections, each sending its next
request as soon as the last is answered) and vegeta for open-loop runs (a fixed arrival rate, whatever the
answers)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from bench.deliveries import Request, write_vegeta_targets, write_wrk_file

REPLAY_SCRIPT: Final = Path(__file__).with_name("replay.lua")
TIMEOUT_SECONDS: Final = 10
RESULT_MARK: Final = "BENCH-RESULT "


@dataclass(frozen=True)
class ClientResult:
    answered: int
    non2xx: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    #: wrk ran out of pre-built requests before the duration ended (the run was shorter).
    exhausted: bool = False

    @property
    def throughput(self) -> float:
        return self.answered / self.seconds


def run_wrk(
    wrk: Path, base_url: str, requests: list[Request], connections: int, seconds: float, workdir: Path
) -> ClientResult:
    replay = workdir / "requests.wrk"
    write_wrk_file(replay, requests)
    output = subprocess.run(
        [
            str(wrk),
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            f"--timeout={TIMEOUT_SECONDS}s",
            "-s",
            str(REPLAY_SCRIPT),
            base_url,
            "--",
            str(replay),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    replay.unlink()
    line = next(line for line in output.splitlines() if line.startswith(RESULT_MARK))
    figures = orjson.loads(line.removeprefix(RESULT_MARK))
    return ClientResult(
        answered=figures["requests"],
        non2xx=figures["non2xx"] + figures["socket_errors"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        p999_ms=figures["p999_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        exhausted=bool(figures["exhausted"]),
    )


def run_vegeta(
    vegeta: Path,
    requests: list[Request],
    rate: int,
    seconds: float,
    workdir: Path,
    max_connections: int | None = None,
) -> ClientResult:
    """`max_connections`: the sender reuses at most that many connections, a request waiting for a free one
    (vegeta 12.13 sets Go's Transport.MaxConnsPerHost, and a result's latency runs from the moment its
    worker took the tick until the body was read, so the wait is in it); None: it dials whenever none of
    its connections is idle."""
    targets = workdir / "targets.jsonl"
    results = workdir / "results.bin"
    write_vegeta_targets(targets, requests)
    subprocess.run(
        [
            str(vegeta),
            "attack",
            "-format=json",
            f"-targets={targets}",
            f"-rate={rate}/s",
            f"-duration={seconds:g}s",
            f"-timeout={TIMEOUT_SECONDS}s",
            "-keepalive=true",
            "-http2=false",
            "-insecure",
            f"-output={results}",
            *([f"-max-connections={max_connections}"] if max_connections is not None else []),
        ],
        check=True,
        capture_output=True,
    )
    encoded = subprocess.run(
        [str(vegeta), "encode", "-to=json", str(results)], check=True, capture_output=True
    ).stdout
    targets.unlink()
    results.unlink()
    answers = [orjson.loads(line) for line in encoded.splitlines() if line]
    latencies = sorted(answer["latency"] / 1e6 for answer in answers)
    return ClientResult(
        answered=len(answers),
        non2xx=sum(1 for answer in answers if not 200 <= answer["code"] < 300),
        seconds=seconds,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        p999_ms=_percentile(latencies, 0.999),
        max_ms=latencies[-1],
    )


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
