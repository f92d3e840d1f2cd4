"""The KMS-call economy simulation counts what the decryptor's cache really does (no timing)."""

from __future__ import annotations

from bench.bench_economy import DAY, arrivals, simulate


def test_one_container_with_a_day_long_max_age_calls_once_per_org() -> None:
    traffic = arrivals(5_000, 10)
    assert simulate(traffic, 10, 1, DAY + 1).calls == 10


def test_no_container_calls_more_than_once_per_playback() -> None:
    traffic = arrivals(5_000, 10)
    assert simulate(traffic, 10, 50, 0.0).calls == 5_000  # max_age 0: no cache at all


def test_the_simulation_agrees_with_the_renewal_model() -> None:
    traffic = arrivals(50_000, 20)
    for containers, max_age in ((1, 60.0), (5, 300.0)):
        economy = simulate(traffic, 20, containers, max_age)
        assert abs(economy.calls - economy.model) / economy.model < 0.05
        assert economy.calls <= containers * economy.floor
