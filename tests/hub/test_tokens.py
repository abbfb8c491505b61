"""Tokens and their secret: lifetime, audience and issuer rules; a secret that is short,
empty, or in a file others may read or own is refused with a message naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from hub.tokens import (
    DEFAULT_MAX_TTL,
    MIN_SECRET_BYTES,
    SECRET_FILE,
    SecretError,
    TokenError,
    TokenRules,
    Tokens,
    check_secret,
    issue_token,
    load_or_create_secret,
    verify_token,
)
from tests.hub.conftest import SECRET

DAY = 86_400
HUBBUB = [sys.executable, "-m", "hub.cli"]


def _signed(**claims: object) -> str:
    return jwt.encode({"sub": "alice", **claims}, SECRET, "HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 253402300799},  # 9999-12-31, no iat
        {"iat": int(time.time()), "exp": 253402300799},
        {"iat": int(time.time()) - 40 * DAY, "exp": int(time.time()) + DAY},  # 41 days long
        {"iat": int(time.time()), "exp": int(time.time()) + 31 * DAY},
        {"iat": int(time.time()) + 300 * DAY, "exp": int(time.time()) + 301 * DAY},
        {"iat": int(time.time())},  # no expiry at all
    ],
    ids=["year-9999", "year-9999-with-iat", "issued-41-days-long", "31-days", "future", "no-exp"],
)
def test_a_token_valid_too_long_or_forever_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(TokenError):
        verify_token(_signed(**claims), SECRET)


def test_the_longest_lifetime_is_accepted_and_configurable() -> None:
    now = int(time.time())
    month = _signed(iat=now, exp=now + DEFAULT_MAX_TTL)
    assert verify_token(month, SECRET) == "alice"
    assert verify_token(_signed(exp=now + DEFAULT_MAX_TTL), SECRET) == "alice"
    with pytest.raises(TokenError, match="longer than the hub allows"):
        verify_token(month, SECRET, TokenRules(max_ttl=3600))


def test_audience_and_issuer_are_checked_when_configured() -> None:
    rules = TokenRules(audience="hubbub.example", issuer="https://login.example")
    good = issue_token("alice", SECRET, audience="hubbub.example", issuer="https://login.example")
    assert verify_token(good, SECRET, rules) == "alice"
    for token in (
        issue_token("alice", SECRET),
        issue_token("alice", SECRET, audience="hubbub.example"),
        issue_token("alice", SECRET, audience="other.example", issuer="https://login.example"),
        issue_token("alice", SECRET, audience="hubbub.example", issuer="https://evil.example"),
    ):
        with pytest.raises(TokenError):
            verify_token(token, SECRET, rules)
    with pytest.raises(TokenError, match="audience"):  # a token for some other service
        verify_token(issue_token("alice", SECRET, audience="other.example"), SECRET)


def test_a_hub_issues_only_tokens_it_accepts() -> None:
    tokens = Tokens(SECRET, TokenRules(max_ttl=600, audience="a", issuer="i"))
    token = tokens.issue("alice")  # a day asked, ten minutes given
    claims = jwt.decode(token, SECRET, ["HS256"], audience="a", issuer="i")
    assert claims["exp"] - claims["iat"] == 600
    assert tokens.verify(token) == "alice"


def test_a_secret_shorter_than_32_bytes_is_refused() -> None:
    for secret in ("", "x" * (MIN_SECRET_BYTES - 1), "é" * 15):  # 30 bytes in 15 characters
        with pytest.raises(SecretError, match="at least 32"):
            check_secret(secret)
    assert check_secret("é" * 16) == "é" * 16


def _secret_file(data_dir: Path, content: bytes, mode: int) -> Path:
    data_dir.mkdir(mode=0o700, exist_ok=True)
    path = data_dir / SECRET_FILE
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        (b"", 0o600, "too short: 0 bytes, at least 32"),
        (b"short\n", 0o600, "too short: 5 bytes"),
        (b"\xff" * 40, 0o600, "not UTF-8"),
        (b"s" * 40, 0o644, "(mode 0644): run `chmod 600 "),
        (b"s" * 40, 0o620, "(mode 0620): run `chmod 600 "),
        (b"s" * 40, 0o604, "(mode 0604): run `chmod 600 "),
    ],
)
def test_a_secret_file_that_must_not_be_used_is_refused(
    tmp_path: Path, content: bytes, mode: int, message: str
) -> None:
    path = _secret_file(tmp_path / "data", content, mode)
    with pytest.raises(SecretError) as refused:
        load_or_create_secret(path.parent)
    assert message in str(refused.value) and str(path) in str(refused.value)


def test_a_secret_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = _secret_file(tmp_path / "data", b"s" * 40, 0o600)
    other = os.geteuid() + 1
    if os.geteuid() == 0:
        os.chown(path, other, -1)
    else:  # only root may give a file away: point at one that root owns
        path.unlink()
        path.symlink_to(next(p for p in (Path("/etc/hostname"), Path("/etc/passwd")) if p.exists()))
        other = 0
    with pytest.raises(SecretError, match=f"belongs to uid {other}, .*: run `chown "):
        load_or_create_secret(path.parent)


def test_a_new_secret_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    old = os.umask(0)
    try:
        secret = load_or_create_secret(data_dir)
    finally:
        os.umask(old)
    path = data_dir / SECRET_FILE
    assert (path.stat().st_mode & 0o777, data_dir.stat().st_mode & 0o777) == (0o600, 0o700)
    assert len(secret.encode()) >= MIN_SECRET_BYTES
    assert load_or_create_secret(data_dir) == secret
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no draft left behind


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    return subprocess.run(
        [*HUBBUB, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**environ, **(env or {})},
    )


def _one_line_error(done: subprocess.CompletedProcess[str], command: str, *parts: str) -> None:
    assert done.returncode != 0 and done.stdout == ""
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"hubbub{command}: ")
    for part in parts:
        assert part in done.stderr


def test_hubbub_token_refuses_a_bad_secret_in_one_line(tmp_path: Path) -> None:
    path = _secret_file(tmp_path / "data", b"", 0o600)
    data_dir = str(path.parent)
    _one_line_error(_run("token", "alice", "--data-dir", data_dir), " token", "at least 32")
    path.write_text("s" * 40)
    path.chmod(0o644)
    done = _run("token", "alice", "--data-dir", data_dir)
    _one_line_error(done, " token", f"chmod 600 {path}")
    assert done.returncode == 2
    _one_line_error(_run("token", "alice", "--secret", "short"), " token", "at least 32")
    _one_line_error(_run("token", "alice", env={"HUBBUB_SECRET": ""}), " token", "at least 32")


def test_hubbub_token_sets_audience_and_issuer(tmp_path: Path) -> None:
    done = _run("token", "alice", "--secret", SECRET, "--audience", "hub", "--issuer", "me")
    rules = TokenRules(audience="hub", issuer="me")
    assert done.returncode == 0 and verify_token(done.stdout.strip(), SECRET, rules) == "alice"


def test_hubbub_serve_refuses_a_bad_secret_in_one_line(tmp_path: Path) -> None:
    path = _secret_file(tmp_path / "data", b"s" * 40, 0o640)
    serve = ("serve", "--port", "0", "--data-dir", str(path.parent))
    _one_line_error(_run(*serve), "", f"chmod 600 {path}")
    assert not (path.parent / "hubbub.sqlite3").exists()  # refused before opening the store
    done = _run(*serve, env={"HUBBUB_SECRET": "short"})
    _one_line_error(done, "", "bad HUBBUB_SECRET", "at least 32")
    done = _run(*serve, "--secret", "short")
    assert (
        done.returncode == 2 and "argument --secret: the token secret is too short" in done.stderr
    )


def test_a_token_from_a_clock_a_little_ahead_is_accepted() -> None:
    """The issuer's clock may be up to CLOCK_LEEWAY seconds ahead of the hub's (a fresh
    token's ``iat`` or ``nbf`` in the hub's future); further ahead is refused."""
    now = int(time.time())
    for ahead in (1, 30):
        token = _signed(iat=now + ahead, nbf=now + ahead, exp=now + ahead + DAY)
        assert verify_token(token, SECRET) == "alice"
    with pytest.raises(TokenError, match="not yet valid"):
        verify_token(_signed(iat=now + 600, exp=now + 600 + DAY), SECRET)
    with pytest.raises(TokenError, match="expired"):
        verify_token(_signed(iat=now - DAY, exp=now - 120), SECRET)
