"""Settings from flags and HUBBUB_* variables: out-of-range numbers are refused with a
message that names the option and the accepted range, never taken silently."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.config import OPTIONS, Settings, add_arguments, settings_from_args

BAD = [
    ("port", "70000", "a whole number >= 0 and <= 65535"),
    ("port", "-1", "a whole number >= 0 and <= 65535"),
    ("outbox_limit", "0", "a whole number >= 1"),
    ("request_rate", "0", "a number > 0"),
    ("write_burst", "-3", "a number > 0"),
    ("auth_timeout", "soon", "a number > 0"),
    ("ping_interval", "-5", "a number >= 0"),
    ("presence_ttl", "nan", "a number > 0"),
    ("request_rate", "inf", "a number > 0"),
    ("retention_per_log", "2.5", "a whole number >= 1"),
    ("partitions", "0", "a whole number >= 1 and <= 1024"),
    ("partitions", "2000", "a whole number >= 1 and <= 1024"),
]
NUMERIC = [
    option
    for option in OPTIONS
    if type(getattr(Settings(), option.field)) in (int, float)  # not bool, str or Path
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubbub serve")
    add_arguments(parser)
    return parser


def _option(field: str) -> object:
    return next(option for option in OPTIONS if option.field == field)


@pytest.mark.parametrize(("field", "value", "expected"), BAD)
def test_a_bad_flag_is_refused_with_the_range(
    field: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = _option(field).flag  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args([flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}: expected {expected}" in capsys.readouterr().err


@pytest.mark.parametrize(("field", "value", "expected"), BAD)
def test_a_bad_variable_is_refused_with_the_range(field: str, value: str, expected: str) -> None:
    env = _option(field).env  # type: ignore[attr-defined]
    with pytest.raises(SystemExit, match=f"bad {env}: expected {expected}"):
        settings_from_args(_parser().parse_args([]), {env: value})


def test_zero_keeps_its_documented_meaning() -> None:
    args = _parser().parse_args(["--port", "0", "--ping-interval", "0", "--presence-grace", "0"])
    settings = settings_from_args(args, {})
    assert (settings.port, settings.ping_interval, settings.presence_grace) == (0, 0.0, 0.0)
    assert settings_from_args(_parser().parse_args([]), {}) == Settings()


@given(st.sampled_from(NUMERIC), st.text(max_size=12))
def test_a_number_option_takes_a_value_or_refuses_it_cleanly(option: object, text: str) -> None:
    parse = option.parse  # type: ignore[attr-defined]
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as refused:
        assert str(refused).startswith("expected ")
    else:
        assert value >= 0


def test_a_hard_retention_bound_below_the_window_is_refused() -> None:
    args = _parser().parse_args(["--retention-seconds", "900", "--retention-max-seconds", "5"])
    with pytest.raises(SystemExit, match="below --retention-seconds"):
        settings_from_args(args, {})
    fine = _parser().parse_args(["--retention-seconds", "60", "--retention-max-seconds", "60"])
    assert settings_from_args(fine, {}).retention_max_seconds == 60


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--redis-cluster"], "--redis-cluster needs --redis URL"),
        (
            ["--redis", "redis://h:7000/0", "--partitions", "8"],
            "--partitions needs --redis-cluster",
        ),
    ],
)
def test_cluster_options_that_cannot_work_alone_are_refused(flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        settings_from_args(_parser().parse_args(flags), {})


def test_a_cluster_deployment_is_named_by_a_flag_and_its_partition_count() -> None:
    args = ["--redis", "redis://h:7000/0", "--redis-cluster", "--partitions", "32"]
    settings = settings_from_args(_parser().parse_args(args), {})
    assert (settings.redis_cluster, settings.partitions) == (True, 32)
    assert settings_from_args(_parser().parse_args([]), {}).partitions == 16
