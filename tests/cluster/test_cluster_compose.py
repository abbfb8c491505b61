"""``docker/compose.yaml`` checked against the topology the tests run as local processes
(there is no Docker engine here): Redis with AOF and a health check, three hub nodes on
it from ``docker/Dockerfile`` with the secret required, and HAProxy on the ports and
servers that ``docker/haproxy.cfg`` (the config the HAProxy tests run) names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hub.config import OPTIONS

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def compose() -> dict[str, Any]:
    """The parsed compose file (YAML anchors resolved)."""
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_services_are_redis_three_hubs_and_the_load_balancer() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "hub1", "hub2", "hub3", "lb"}
    redis = services["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_each_hub_runs_the_image_on_redis_with_a_required_secret() -> None:
    services = compose()["services"]
    known = {option.env for option in OPTIONS}
    for name in ("hub1", "hub2", "hub3"):
        hub = services[name]
        assert hub["build"]["dockerfile"] == "docker/Dockerfile"
        environment = hub["environment"]
        assert environment["HUBBUB_REDIS_URL"] == "redis://redis:6379/0"
        assert ":?" in environment["HUBBUB_SECRET"]  # compose refuses to start without it
        assert set(environment) <= known, set(environment) - known  # real hub variables
        assert hub["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_dockerfile_serves_the_port_and_health_check_haproxy_uses() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "HUBBUB_PORT=8765" in dockerfile and "EXPOSE 8765" in dockerfile
    assert "HUBBUB_HOST=0.0.0.0" in dockerfile
    assert re.search(r"HEALTHCHECK .*\n.*127\.0\.0\.1:8765/healthz", dockerfile)
    assert 'CMD ["hubbub", "serve"]' in dockerfile


def test_the_load_balancer_config_matches_the_services() -> None:
    services = compose()["services"]
    lb = services["lb"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    assert set(lb["ports"]) == {"8765:8765", "8404:8404"}
    assert set(lb["depends_on"]) == {"hub1", "hub2", "hub3"}
    config = (DOCKER / "haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server (\S+) (\S+)$", config, flags=re.M)
    assert servers == [(f"hub{n}", f"hub{n}:8765") for n in (1, 2, 3)]
    assert "bind :8765" in config and "bind :8404" in config
    assert "option httpchk GET /readyz" in config and "timeout tunnel" in config
