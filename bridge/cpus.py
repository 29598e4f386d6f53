"""`server.workers: auto`: how many CPUs the bridge may use, from the container's CPU limit.

Kubernetes turns `resources.limits.cpu` into a CFS quota on the container's cgroup: `cpu.max`
("<quota> <period>" or "max <period>") under cgroup v2, `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 for
none) under v1. The limit is quota / period CPUs, rounded up (1.5 CPUs keep two workers busy, throttled
at 1.5). The bridge's own cgroup is read from /proc/self/cgroup and every ancestor up to the mount point
counts (the smallest quota wins), so it also works without a cgroup namespace. Without any quota the
answer is the CPUs the process may run on (its affinity mask); a quota above them is capped there, since
a worker per CPU the process can never run on would only add memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

CGROUP_MOUNT: Final = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP: Final = Path("/proc/self/cgroup")
#: The cgroup v1 hierarchies that may hold the CPU controller (mounted alone or together with cpuacct).
V1_CPU_DIRECTORIES: Final = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def affinity_cpus() -> int:
    return len(os.sched_getaffinity(0))


def cpu_limit(
    mount: Path = CGROUP_MOUNT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
    available: Callable[[], int] = affinity_cpus,
) -> int:
    """The CPUs the bridge may use: its cgroup's quota rounded up, else (and at most) the affinity mask."""
    cpus = available()
    quotas = [math.ceil(quota) for quota in _quotas(mount, _cgroup_paths(proc_self_cgroup))]
    return max(1, min([cpus, *quotas]))


def _cgroup_paths(proc_self_cgroup: Path) -> dict[str, str]:
    """Controller list (empty for v2) -> the process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    try:
        text = proc_self_cgroup.read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    return paths


def _quotas(mount: Path, paths: dict[str, str]) -> Iterator[float]:
    """Every CPU quota (in CPUs) set on the process's cgroup or an ancestor, v2 and v1."""
    for directory in _ancestors(mount, paths.get("", "/")):
        quota = _v2_quota(directory / "cpu.max")
        if quota is not None:
            yield quota
    for hierarchy in V1_CPU_DIRECTORIES:
        path = paths.get(hierarchy, "/")
        for directory in _ancestors(mount / hierarchy, path):
            quota = _v1_quota(directory / "cpu.cfs_quota_us", directory / "cpu.cfs_period_us")
            if quota is not None:
                yield quota


def _ancestors(root: Path, cgroup: str) -> Iterator[Path]:
    """root/cgroup and its parents up to root (inside a cgroup namespace the path is `/`: root itself)."""
    directory = root / cgroup.strip("/")
    while True:
        yield directory
        if directory == root or root not in directory.parents:
            return
        directory = directory.parent


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v2_quota(cpu_max: Path) -> float | None:
    text = _read(cpu_max)
    if text is None:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    return _ratio(quota, period or "100000")


def _v1_quota(quota_file: Path, period_file: Path) -> float | None:
    quota, period = _read(quota_file), _read(period_file)
    if quota is None or period is None or quota.startswith("-"):
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        cpus = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return cpus if cpus > 0 else None
