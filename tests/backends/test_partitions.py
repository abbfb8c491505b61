"""The partition map and numbering rules (docs/cluster.md 1-2), and the Lua numbering held
to the Python rules on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.backends.partitions import NUMBERING_LUA, Partitions, close_to, next_number
from hub.names import FollowersKey
from tests.redisproc import RedisServer

counts = st.integers(1, 64)
numbers = st.integers(0, 10**12)


@given(count=counts, data=st.data(), current=numbers, floor=numbers)
def test_next_number_is_the_partitions_first_above_counter_and_floor(
    count: int, data: st.DataObject, current: int, floor: int
) -> None:
    part = data.draw(st.integers(0, count - 1))
    current -= (current - part) % count  # counters only ever hold the partition's numbers
    n = next_number(current, part, count, floor)
    assert n % count == part
    assert n > current and n > floor
    assert n - count <= max(current, floor)  # the first such number, none skipped


@given(count=counts, data=st.data(), current=numbers, target=numbers)
def test_close_raises_a_counter_to_its_first_number_at_or_above_the_target(
    count: int, data: st.DataObject, current: int, target: int
) -> None:
    part = data.draw(st.integers(0, count - 1))
    current -= (current - part) % count
    closed = close_to(current, part, count, target)
    assert closed % count == part
    assert closed >= target and closed >= current
    assert closed == current or closed - count < target


def test_one_partition_numbers_one_two_three() -> None:
    numbered = [0]
    for _ in range(3):
        numbered.append(next_number(numbered[-1], 0, 1))
    assert numbered[1:] == [1, 2, 3]


def test_partitions_of_users_and_posts_are_stable_and_in_range() -> None:
    parts = Partitions(16)
    assert parts.of_user("alice") == parts.of_user("alice") == 7  # crc32, not hash()
    assert {parts.of_user(f"user{n}") for n in range(1000)} == set(range(16))
    assert parts.of_post(35) == 3 == parts.of_number(35)
    assert parts.key(3, "seq:change") == "hb:{hb:P3}seq:change" == parts.counter(3)
    assert parts.tick_channel(0) == "hb:{hb:P0}c:_tick"
    one = Partitions(1)  # one Redis: the layout without tags
    assert one.counter(0) == "hb:seq:change" and one.namespace(0) == "hb:"
    assert one.channels(FollowersKey("ann")) == [(0, "hb:c:f:ann")]


@pytest.mark.parametrize("count", [0, 1025])
def test_a_partition_count_out_of_range_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="partitions must be 1 to 1024"):
        Partitions(count)


@pytest.fixture(scope="module")
def redis_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    server = RedisServer(Path(tmp_path_factory.mktemp("numbering"))).start()
    client = redis.Redis(port=server.port, decode_responses=True)
    yield client
    client.close()
    server.stop()


_NEXT = (
    NUMBERING_LUA
    + "return next_number(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))"
)
_CLOSE = (
    NUMBERING_LUA
    + "return close_to(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))"
)


@settings(max_examples=60, deadline=None)
@given(
    count=counts,
    data=st.data(),
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 2**50)), min_size=1, max_size=8),
)
def test_the_lua_numbering_follows_the_python_rules(
    redis_client: redis.Redis, count: int, data: st.DataObject, steps: list[tuple[bool, int]]
) -> None:
    part = data.draw(st.integers(0, count - 1))
    key = "numbering-test"
    redis_client.delete(key)
    current = part
    for closing, value in steps:
        if closing:
            expected = close_to(current, part, count, value)
            got = redis_client.eval(_CLOSE, 1, key, part, count, value)
        else:
            floor = value if value % 2 else 0
            expected = next_number(current, part, count, floor)
            got = redis_client.eval(_NEXT, 1, key, part, count, floor)
        assert int(got) == expected
        assert int(redis_client.get(key) or part) == expected
        current = expected
