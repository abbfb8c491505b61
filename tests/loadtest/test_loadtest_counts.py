"""The load generator's counts are exact: deliveries, injected losses and duplicates."""

from __future__ import annotations

from clients.loadtest.graph import GraphSpec, SocialGraph
from clients.loadtest.workers import run_loadtest
from tests.loadtest.conftest import config


def test_burst_counts_are_exact_with_injected_loss_and_duplicates(hub_url: str) -> None:
    spec = GraphSpec(users=241, follows=0, star=True, prefix="cnt")
    cfg = config(hub_url, "burst", spec, workers=2, posts=12, inject_loss=3, inject_dup=2)
    result = run_loadtest(cfg, SocialGraph.generate(spec), make_follows=True)
    assert result["connections"]["up"] == 241
    assert result["posts"]["published"] == 12
    corr = result["correctness"]
    assert corr["expected"] == 241 * 12  # every follower and the author itself
    assert corr["missed"] == 3 * 12  # the three cut without resume
    assert corr["duplicated"] == 2 * 12  # the two resumed from their first cursor
    assert corr["unexpected"] == 0
    assert result["deliveries"]["total"] == (241 - 3) * 12
    assert result["latency_ms"]["count"] == (241 - 3) * 12
    assert result["deliveries"]["per_second"] > 0
    assert result["errors"] == {}


def test_steady_social_traffic_is_delivered_exactly_once(hub_url: str) -> None:
    spec = GraphSpec(users=60, follows=6, prefix="std")
    cfg = config(
        hub_url,
        "steady",
        spec,
        duration=2.0,
        post_rate=2.0,
        reply_rate=0.5,
        like_rate=0.5,
        follow_rate=0.2,
    )
    result = run_loadtest(cfg, SocialGraph.generate(spec), make_follows=True)
    corr = result["correctness"]
    assert result["posts"]["published"] > 50
    assert corr["expected"] > 0
    assert (corr["missed"], corr["duplicated"], corr["unexpected"]) == (0, 0, 0)
    assert result["timeline"]


def test_reconnect_storm_resumes_everyone_without_gaps(hub_url: str) -> None:
    spec = GraphSpec(users=124, follows=2, authors=4, alpha=0, prefix="stm")
    cfg = config(hub_url, "storm", spec, posters=4, post_rate=10.0, storm_window=1.0, workers=2)
    result = run_loadtest(cfg, SocialGraph.generate(spec), make_follows=True)
    storm, corr = result["storm"], result["correctness"]
    assert storm["clients"] == storm["resumed"] == 120
    assert corr["expected"] > 0
    assert (corr["missed"], corr["duplicated"]) == (0, 0)
