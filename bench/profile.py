"""Where the bridge's CPU goes under load: py-spy samples the bridge (Python and native frames: librdkafka,
OpenSSL, the kernel entry points) while wrk drives it, and the top frames are printed by own and total time.

    .venv/bin/python -m bench.profile [seconds]     (after make bench has installed the tools)
    .venv/bin/python -m bench.profile --summarize   (the last profile again)

kafka_first, plain HTTP, 128 connections: the configuration of the CPU-per-delivery target. The collapsed
stacks stay in .cache/bench/profile.txt (speedscope and flamegraph tools read them).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Final

from bench import contenders, toolchain
from bench.deliveries import write_wrk_file
from bench.run import WORK, local_kafka

CONNECTIONS: Final = 128
SAMPLES_PER_SECOND: Final = 250
TOP: Final = 25


#: Native frames of a thread that waits (a lock, a condition, the GIL, epoll): py-spy cannot tell those
#: threads idle when it reads native stacks, so their samples are dropped here. Only the wait itself:
#: libuv's `uv__io_poll` also runs every I/O callback (reading and parsing each request), so a frame
#: below it is busy unless it is the `epoll_pwait` call.
WAITING: Final = (
    "pthread_cond_timedwait",
    "pthread_cond_wait",
    "PyThread_acquire_lock_timed",
    "take_gil",
    "epoll_wait",
    "epoll_pwait",
)


def _function(frame: str) -> str:
    """`name (path:line)` → `name (path)`: one entry per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def _library(frame: str) -> str:
    where = frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/"):
        if marker in where:
            return where.split(marker, 1)[1].split("/", 1)[0]
    return where


def busy_stacks(collapsed: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not any(marker in stack for marker in WAITING):
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summaries(stacks: list[tuple[list[str], int]]) -> dict[str, Counter[str]]:
    own: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for frames, weight in stacks:
        own[_function(frames[-1])] += weight
        libraries[_library(frames[-1])] += weight
        for function in {_function(frame) for frame in frames}:
            total[function] += weight
    return {"own time by function": own, "own time by file or library": libraries, "total time": total}


def report(collapsed: Path) -> None:
    stacks = busy_stacks(collapsed)
    samples = sum(weight for _, weight in stacks)
    print(f"{samples} busy samples at {SAMPLES_PER_SECOND}/s per thread (waits dropped)")
    for title, counts in summaries(stacks).items():
        print(f"\nTop {TOP} by {title}:")
        for frame, count in counts.most_common(TOP):
            print(f"  {count / samples:6.1%}  {frame}")


def main() -> None:
    collapsed = WORK / "profile.txt"
    if sys.argv[1:] == ["--summarize"]:
        report(collapsed)
        return
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    broker = local_kafka()
    workdir = WORK / "profile"
    running = contenders.start(contenders.bridge("kafka_first", tls=False), workdir, broker.bootstrap)
    launch = running.launch
    requests = workdir / "requests.wrk"
    write_wrk_file(requests, launch.make_requests(launch.url, 8000 * (seconds + 5)))
    try:
        load = subprocess.Popen(
            [
                str(toolchain.wrk()),
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{seconds + 2}s",
                "-s",
                str(Path(__file__).with_name("replay.lua")),
                launch.base_url,
                "--",
                str(requests),
            ],
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--native",
                "--pid",
                str(running.process.pid),
                "--rate",
                str(SAMPLES_PER_SECOND),
                "--duration",
                str(seconds),
                "--format",
                "raw",
                "--output",
                str(collapsed),
            ],
            check=True,
            capture_output=True,
        )
        load.wait()
    finally:
        running.stop()
        requests.unlink(missing_ok=True)
    report(collapsed)


if __name__ == "__main__":
    main()
