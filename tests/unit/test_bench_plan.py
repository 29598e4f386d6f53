"""What the BENCH_* variables ask `make bench` for (bench/run.py): which points, and whether the run may
replace the published results in docs/benchmarks.md."""

from __future__ import annotations

import pytest

from bench.plan import FULL, POOL_CONNECTIONS, QUICK, BenchSettingError, plan_from


def test_only_the_full_run_replaces_the_published_results() -> None:
    assert plan_from({}) == (FULL, False)
    assert plan_from({"BENCH_QUICK": "1"}) == (QUICK, True)
    assert plan_from({"BENCH_ONLY": "peer"})[1]


def test_another_duration_alone_is_a_partial_run() -> None:
    plan, partial = plan_from({"BENCH_SECONDS": "5"})
    assert plan.seconds == 5 and plan.connections == FULL.connections
    assert partial


def test_points_are_picked_and_an_empty_list_means_none_of_that_client() -> None:
    plan, partial = plan_from({"BENCH_CONNECTIONS": "", "BENCH_RATES": "1000, 5000"})
    assert (plan.connections, plan.rates, partial) == ((), (1000, 5000), True)


def test_the_pooled_sender_is_its_own_open_loop_point_after_the_unbounded_ones() -> None:
    assert FULL.open_loop() == ((1000, None), (5000, None), (5000, POOL_CONNECTIONS))
    plan, partial = plan_from({"BENCH_CONNECTIONS": "", "BENCH_RATES": "", "BENCH_POOLED_RATES": "5000"})
    assert (plan.open_loop(), partial) == (((5000, POOL_CONNECTIONS),), True)


@pytest.mark.parametrize(
    ("variable", "value", "wrong"),
    [
        ("BENCH_RATES", "1000,5k", "'5k'"),
        ("BENCH_POOLED_RATES", "0", "'0'"),
        ("BENCH_CONNECTIONS", "many", "'many'"),
        ("BENCH_CONNECTIONS", "128,-8", "'-8'"),
        ("BENCH_SECONDS", "ten", "'ten'"),
    ],
)
def test_a_value_that_is_not_a_number_names_the_variable_the_value_and_what_to_write(
    variable: str, value: str, wrong: str
) -> None:
    with pytest.raises(BenchSettingError) as raised:
        plan_from({variable: value})
    message = str(raised.value)
    assert message.startswith(f"{variable}={value!r}: {wrong} is not a number above 0; write ")
    assert "e.g." in message
