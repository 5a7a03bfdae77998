"""deploy/: alert rules pass promtool, and every query names a metric a live gateway exports."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tickwire.config import OPTIONS, Settings

from .helpers import Client, Running, free_port, running_gateway


DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "tickwire.json"

PROMQL_WORDS = frozenset(
    "and or unless bool offset by without on ignoring group_left group_right inf nan "
    "sum min max avg count stddev stdvar topk bottomk quantile count_values group".split()
)


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make system-deps` installs it (Debian package prometheus)"
    done = subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_alert_rules_pass_promtool_check() -> None:
    out = promtool("check", "rules", "alerts.yml")
    assert "SUCCESS: 12 rules found" in out


def test_alert_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def test_every_alert_has_a_unit_test() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)", (PROMETHEUS / "alerts.yml").read_text(), re.M))
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts_test.yml").read_text()))
    assert alerts and alerts == tested


def test_example_prometheus_config_is_valid() -> None:
    promtool("check", "config", "prometheus.yml")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr):
        word = match.group(0)
        if word in PROMQL_WORDS or expr[match.end() :].lstrip().startswith("("):
            continue  # a keyword, a function or an aggregation
        names.add(word)
    return names


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (kind, le) (rate(a_bucket{job=~"$job", x="y"}[$__rate_interval])))'
        " > 1 and on (instance) b_total offset 5m or c > bool 0.9 * d"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d"}
    assert metric_names("label_values(tickwire_info, job)") == {"tickwire_info", "job"}


def dashboard_queries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def alert_queries(text: str) -> Iterator[str]:
    """``expr:`` values of alerts.yml, single-line or block scalars."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)expr: ?(.*)$", line)
        if not match:
            continue
        indent, value = len(match.group(1)), match.group(2).strip()
        if value not in ("|", ">"):
            yield value
            continue
        block = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following.strip())
        yield " ".join(block)


def exported_names(text: str) -> tuple[set[str], set[str]]:
    """(sample names, family names) of a /metrics page. A family without
    samples yet counts with its suffixes (``_total`` is part of a counter's
    family name in this format; a histogram has ``_bucket``, ``_sum``, ``_count``)."""
    samples: set[str] = set()
    families: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            families[name] = kind
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    for name, kind in families.items():
        if not any(s == name or s.startswith(name + "_") for s in samples):
            suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
            samples.update(name + suffix for suffix in suffixes)
    return samples, set(families)


async def live_metrics(running: Running) -> str:
    async with Client.connect(running.ws_url) as client:
        await client.subscribe("price:BTCUSDT", "trades:BTCUSDT", "signals:BTCUSDT")
        await client.recv_until(lambda m: m["type"] == "trade")
        async with Client.connect(running.ws_url) as other:
            await other.ws.close()
        async with aiohttp.ClientSession() as http, http.get(running.url + "/metrics") as resp:
            return await resp.text()


async def test_every_query_names_a_metric_the_gateway_exports() -> None:
    async with running_gateway(linger=0.1) as gw:
        exported, families = exported_names(await live_metrics(gw))
    assert {"tickwire_delivery_latency_seconds_bucket", "tickwire_connections_closed_total"} <= exported
    dashboard = json.loads(DASHBOARD.read_text())
    queries = list(dashboard_queries(dashboard)) + list(
        alert_queries((PROMETHEUS / "alerts.yml").read_text())
    )
    assert len(queries) > 40
    generated = {"up"}  # Prometheus' own per target
    label_names = {"job", "instance"}  # label_values(metric, label) in the dashboard variables
    unknown = {
        (name, query)
        for query in queries
        for name in metric_names(query) - label_names
        if name not in exported and name not in generated
    }
    assert not unknown
    # and the dashboard shows every tickwire metric family
    used = set().union(*(metric_names(q) for q in dashboard_queries(dashboard)))
    ours = {f for f in families if f.startswith("tickwire_") and not f.endswith(("_gsum", "_gcount"))}
    assert {f for f in ours if not any(u == f or u.startswith(f + "_") for u in used)} == set()


def test_dashboard_is_what_its_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("tickwire_dashboard", DEPLOY / "grafana" / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text() == module.render(), "run: python deploy/grafana/dashboard.py"
    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]
    assert {p["type"] for p in panels} >= {"timeseries", "heatmap", "stat"}
    ids = [p["id"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


DEPLOY_FILES = ["Containerfile", "systemd/tickwire@.service", "example/compose.yaml"] + [
    f"example/systemd/{name}.env" for name in ("gateway1", "gateway2", "gateway3", "ingest")
]


@pytest.mark.parametrize("path", DEPLOY_FILES)
def test_deploy_files_use_only_real_settings(path: str) -> None:
    lines = (DEPLOY / path).read_text().splitlines()
    text = "\n".join(line for line in lines if "redis-server" not in line)  # tickwire's lines only
    flags = {o.cli for o in OPTIONS} | {a for o in OPTIONS for a in o.aliases}
    envs = {o.env for o in OPTIONS}
    used_flags = set(re.findall(r'"(--[a-z][a-z-]+)"', text))
    used_envs = set(re.findall(r"\bTICKWIRE_[A-Z_]+", text))
    assert used_flags <= flags and used_envs <= envs
    assert used_envs or used_flags


def test_nginx_config_upgrades_websockets_without_buffering() -> None:
    conf = (DEPLOY / "nginx" / "tickwire.conf").read_text()
    ws = conf[conf.index("location = /ws") :]
    ws = ws[: ws.index("}")]
    for directive in (
        "proxy_http_version 1.1",
        "proxy_set_header Upgrade $http_upgrade",
        "proxy_set_header Connection $connection_upgrade",
        "proxy_buffering off",
    ):
        assert directive in conf
    assert "proxy_buffering off" in ws
    timeout = int(re.search(r"proxy_read_timeout (\d+)s", ws).group(1))  # type: ignore[union-attr]
    assert timeout > 2 * Settings().ping_interval  # an idle client survives between pings
    assert "$request " not in conf and "$request_uri" not in conf  # no ?token= in nginx's log


def _healthcheck_argv() -> list[str]:
    """The exec-form ``CMD`` of the Containerfile's HEALTHCHECK (continuation lines joined)."""
    text = (DEPLOY / "Containerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])\s*$", text, re.M)
    assert match, "Containerfile has no exec-form HEALTHCHECK"
    argv: list[str] = json.loads(match.group(1))
    return argv


async def _healthcheck(port: int) -> int:
    argv = _healthcheck_argv()
    assert argv[0] == "python"
    env = {k: v for k, v in os.environ.items() if k != "TICKWIRE_PORT"} | {"TICKWIRE_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv[1:], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def test_container_healthcheck_asks_the_configured_port() -> None:
    async with running_gateway() as gw:
        assert gw.port != 3000
        assert await _healthcheck(gw.port) == 0
        assert await _healthcheck(free_port()) != 0  # a port nobody listens on


def test_compose_redis_keeps_an_append_only_file() -> None:
    text = (DEPLOY / "example" / "compose.yaml").read_text()
    redis = re.search(r"^  redis:\n(.*?)(?=^  \w|^\w)", text, re.S | re.M)
    assert redis, "compose.yaml has no redis service"
    command = re.search(r"command: (\[.*\])", redis.group(1))
    assert command
    args = json.loads(command.group(1))
    assert args[args.index("--appendonly") + 1] == "yes"  # docs/multi-node.md: run Redis with AOF
    assert "--appendfsync" not in args or args[args.index("--appendfsync") + 1] == "everysec"
    volume = re.search(r"- (\w[\w-]*):/data\b", redis.group(1))
    assert volume, "the AOF lives in the container's /data: keep it on a volume"
    assert re.search(rf"^volumes:\n(?:  .*\n)*?  {volume.group(1)}:", text, re.M)


def test_systemd_unit_starts_after_redis() -> None:
    text = (DEPLOY / "systemd" / "tickwire@.service").read_text()
    unit = text[text.index("[Unit]") : text.index("[Service]")]
    directives: dict[str, set[str]] = {}
    for line in unit.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            directives.setdefault(key.strip(), set()).update(value.split())
    # Debian's Redis unit is redis-server.service (redis.service is only its alias once enabled)
    assert "redis-server.service" in directives.get("After", set())
    assert "redis-server.service" in directives.get("Wants", set())
    assert "network-online.target" in directives["After"] & directives["Wants"]
