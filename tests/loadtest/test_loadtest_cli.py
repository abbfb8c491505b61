"""``hubbub loadtest`` as a user runs it: --json fields, --plot, graph reuse, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients.loadtest.graph import GraphError, GraphSpec, SocialGraph
from hub.cli import main
from tests.hub.serverproc import ServerProcess
from tests.loadtest.conftest import SECRET

JSON_FIELDS = {
    "scenario", "url", "workers", "graph", "connections", "deliveries", "latency_ms",
    "posts", "errors", "correctness", "storm", "timeline", "distribution", "token_error",
    "reconnects",
}  # fmt: skip


def test_json_and_plot_have_the_documented_content(hub_url: str, tmp_path: Path) -> None:
    out, png, graph = tmp_path / "r.json", tmp_path / "r.png", tmp_path / "g.json"
    args = ["loadtest", hub_url, "--scenario", "burst", "--users", "30", "--follows", "3"]
    args += ["--posts", "5", "--prefix", "cli", "--secret", SECRET, "--quiet"]
    assert main([*args, "--graph", str(graph), "--json", str(out), "--plot", str(png)]) == 0
    result = json.loads(out.read_text())
    assert set(result) >= JSON_FIELDS
    assert set(result["latency_ms"]) == {"p50", "p90", "p99", "p99_9", "max", "mean", "count"}
    assert set(result["correctness"]) == {
        "expected", "received", "missed", "duplicated", "unexpected", "resyncs",
        "cursor_regressions",
    }  # fmt: skip
    assert result["correctness"]["missed"] == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert SocialGraph.load(graph).spec.prefix == "cli"
    # The saved graph is reused: no follows made again, same counts.
    assert main([*args, "--graph", str(graph), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["correctness"]["missed"] == 0


def test_dev_tokens_are_fetched_from_a_dev_hub(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "dev", SECRET, "--dev")
    server.start()
    try:
        out = tmp_path / "idle.json"
        args = ["loadtest", server.url, "--scenario", "idle", "--users", "12", "--follows", "2"]
        assert main([*args, "--duration", "0", "--quiet", "--json", str(out)]) == 0
    finally:
        server.kill()
    result = json.loads(out.read_text())
    assert result["connections"]["up"] == 12
    assert result["errors"] == {}


def test_token_refusal_is_explained(hub_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["loadtest", hub_url, "--scenario", "idle", "--users", "2", "--follows", "0"]
    assert main([*args, "--duration", "0", "--quiet"]) == 1  # this hub is not --dev
    assert "start the hub with --dev or pass --secret" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://x/"], "not a ws:// or wss:// URL"),
        (["ws://127.0.0.1:1/", "--users", "0"], "--users must be at least 1"),
        (["ws://127.0.0.1:1/", "--users", "5", "--follows", "5"], "--follows must be"),
    ],
)
def test_bad_arguments_say_what_to_do(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["loadtest", *args]) == 2
    assert message in capsys.readouterr().err


def test_negative_numbers_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["loadtest", "ws://127.0.0.1:1/", "--duration", "-1"])
    assert "must be 0 or more" in capsys.readouterr().err


def test_graph_is_deterministic_power_law_and_round_trips(tmp_path: Path) -> None:
    spec = GraphSpec(users=2000, follows=10, seed=7)
    graph = SocialGraph.generate(spec)
    assert graph == SocialGraph.generate(spec)
    counts = sorted(map(len, graph.followers()), reverse=True)
    assert counts[0] > 20 * counts[len(counts) // 2]  # a few users get most followers
    assert all(len(f) == 10 and user not in f for user, f in enumerate(graph.followees))
    path = tmp_path / "g.json"
    graph.save(path)
    assert SocialGraph.load(path) == graph
    assert graph.number("lt17") == 17 and graph.number("lt9999") is None


def test_unusable_graph_files_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(GraphError, match="cannot read graph file"):
        SocialGraph.load(path)
    path.write_text(json.dumps({"spec": {"users": 2, "follows": 0}, "followees": [[5], []]}))
    with pytest.raises(GraphError, match="inconsistent"):
        SocialGraph.load(path)
