"""`server.workers: auto` reads the container's CPU limit from cgroup files (here: files in a tmp tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ConfigError, load_settings
from bridge.cpus import cpu_limit


def tree(tmp_path: Path, files: dict[str, str], proc: str = "0::/\n") -> tuple[Path, Path]:
    mount = tmp_path / "cgroup"
    for name, text in files.items():
        path = mount / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    mount.mkdir(exist_ok=True)
    proc_file = tmp_path / "proc-self-cgroup"
    proc_file.write_text(proc)
    return mount, proc_file


def limit(tmp_path: Path, files: dict[str, str], proc: str = "0::/\n", cpus: int = 8) -> int:
    mount, proc_file = tree(tmp_path, files, proc)
    return cpu_limit(mount, proc_file, lambda: cpus)


def test_cgroup_v2_quota_is_rounded_up(tmp_path: Path) -> None:
    assert limit(tmp_path, {"cpu.max": "200000 100000\n"}) == 2
    assert limit(tmp_path, {"cpu.max": "150000 100000\n"}) == 2
    assert limit(tmp_path, {"cpu.max": "10000 100000\n"}) == 1  # 100m: one worker, never zero


def test_cgroup_v2_without_a_quota_falls_back_to_the_affinity_mask(tmp_path: Path) -> None:
    assert limit(tmp_path, {"cpu.max": "max 100000\n"}, cpus=3) == 3
    assert limit(tmp_path, {}, cpus=3) == 3


def test_a_quota_above_the_usable_cpus_is_capped_there(tmp_path: Path) -> None:
    assert limit(tmp_path, {"cpu.max": "1600000 100000\n"}, cpus=2) == 2


def test_the_process_cgroup_and_its_ancestors_count_the_smallest_wins(tmp_path: Path) -> None:
    files = {"kubepods/cpu.max": "300000 100000", "kubepods/pod1/ctr/cpu.max": "max 100000"}
    assert limit(tmp_path, files, proc="0::/kubepods/pod1/ctr\n") == 3
    files["kubepods/pod1/cpu.max"] = "100000 100000"
    assert limit(tmp_path, files, proc="0::/kubepods/pod1/ctr\n") == 1


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    v1 = "4:memory:/x\n2:cpu,cpuacct:/\n"
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "250000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    assert limit(tmp_path, files, proc=v1) == 3
    files["cpu,cpuacct/cpu.cfs_quota_us"] = "-1\n"
    assert limit(tmp_path, files, proc=v1, cpus=5) == 5


def test_unreadable_or_garbage_files_are_no_limit(tmp_path: Path) -> None:
    assert limit(tmp_path, {"cpu.max": "lots 0\n"}, cpus=4) == 4
    mount = tmp_path / "none"
    assert cpu_limit(mount, tmp_path / "no-such-proc-file", lambda: 2) == 2


@pytest.mark.parametrize("value", [0, -1, "two", 1.5, True, 65])
def test_server_workers_is_refused_precisely(value: object, tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("webhooks: [{name: prod}]\n")
    environ = {"IDAAS_BRIDGE_WEBHOOK_PROD_TOKENS": "t" * 32, "IDAAS_BRIDGE_SERVER__WORKERS": str(value)}
    with pytest.raises(
        ConfigError, match=r"^IDAAS_BRIDGE_SERVER__WORKERS = .* \(server\.workers\): .*from 1 to 64, or auto"
    ):
        load_settings(str(config), environ)


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("3", 3), (None, 1)])
def test_server_workers_accepts_a_count_or_auto(value: str | None, expected: object, tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("webhooks: [{name: prod}]\n")
    environ = {"IDAAS_BRIDGE_WEBHOOK_PROD_TOKENS": "t" * 32}
    if value is not None:
        environ["IDAAS_BRIDGE_SERVER__WORKERS"] = value
    assert load_settings(str(config), environ).server.workers == expected


def test_workers_must_each_get_a_segment_of_the_spool(tmp_path: Path) -> None:
    from bridge.workers import worker_count

    config = tmp_path / "bridge.yaml"
    config.write_text("webhooks: [{name: prod}]\nspool: {max_bytes: 1048576, segment_bytes: 524288}\n")
    environ = {"IDAAS_BRIDGE_WEBHOOK_PROD_TOKENS": "t" * 32, "IDAAS_BRIDGE_SERVER__WORKERS": "2"}
    assert worker_count(load_settings(str(config), environ)) == 2
    environ["IDAAS_BRIDGE_SERVER__WORKERS"] = "3"
    with pytest.raises(ConfigError) as raised:
        worker_count(load_settings(str(config), environ))
    assert str(raised.value) == (
        f"spool.max_bytes = 1048576 in {config}: the 3 workers of IDAAS_BRIDGE_SERVER__WORKERS = 3 "
        f"(server.workers) share it, 349525 bytes each, less than spool.segment_bytes = 524288 in {config}; "
        "raise spool.max_bytes or lower spool.segment_bytes"
    )
