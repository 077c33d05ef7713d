"""Dashboards and alerts (deploy/monitoring) checked by the real tools and against a live stack.

- promtool (Debian's prometheus package) checks the Prometheus config and the rules, and runs the
  rules' unit tests (alerts.test.yml: each alert fires on its condition and not otherwise).
- Every metric and label the rules, the dashboard and the KEDA trigger name is one a live gateway's
  /metrics or a live worker's metrics server exports, after one real job (so the labelled series
  exist). The worker's GPU gauges exist only once CUDA is initialised: on this CPU stack their names
  come from the worker's own collector with torch's CUDA readings stood in for (and the live worker
  is checked to lack them).
- A real Prometheus (the same package) scrapes that stack, evaluates the rules without error and
  answers every dashboard query; no alert is active on a healthy stack.
- `docker-compose --profile monitoring config` (Debian's docker-compose) names prometheus and grafana
  with the provisioning mounted where the provisioning files expect it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from core.contract.records import JobStatus
from tests.support.fault_stack import FAST_REAPER, QUICK, job_body, submit
from tests.support.processes import wait_for
from tests.support.redis_server import free_port, redis_server
from tests.support.service_stack import stack_env, start_stack, wait_for_terminal
from worker.metrics import GpuMemoryCollector

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy/monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus/prometheus.yml"
RULES = MONITORING / "prometheus/alerts.yml"
RULE_TESTS = MONITORING / "prometheus/alerts.test.yml"
DATASOURCES = MONITORING / "grafana/provisioning/datasources/prometheus.yml"
DASHBOARD_PROVIDERS = MONITORING / "grafana/provisioning/dashboards/mimicmotion.yml"
DASHBOARD = MONITORING / "grafana/dashboards/mimicmotion.json"

# Labels Prometheus itself attaches to every scraped series.
TARGET_LABELS = {"instance", "job"}
# The labels whose values are a job's status (the gateway's job counts, the worker's outcomes).
STATUS_LABELS = {"status", "outcome"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make system-deps` (Debian's prometheus package) installs it"
    return path


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60)


# --- PromQL: the metric names and label names an expression refers to ---------------------------------

AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                "topk", "quantile"}  # fmt: skip
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan"}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
# An identifier not inside a number or a duration (1e9, 5m): metric names may hold colons.
_IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")


@dataclass(frozen=True)
class Reference:
    """What one expression names: series selectors' metric names, label names, and status values it matches."""

    metrics: frozenset[str]
    labels: frozenset[str]
    status_values: frozenset[str]


def references(expr: str) -> Reference:
    """The metrics, labels and status label values one PromQL expression refers to.

    Grafana's ``$__rate_interval``-style variables are replaced by a duration first. Names followed by
    ``(`` are functions, aggregations and keywords are not metrics, and the labels of matchers and
    grouping clauses are collected apart from metric names.
    """
    text = re.sub(r"\$\{?__\w+\}?", "1m", expr)
    labels: set[str] = set()
    status_values: set[str] = set()
    for name, _op, value in _MATCHER.findall(text):
        labels.add(name)
        if name in STATUS_LABELS:
            status_values.update(value.split("|"))
    text = _MATCHERS.sub(" ", _STRING.sub('""', text))
    for _keyword, names in _GROUPING.findall(text):
        labels.update(name.strip() for name in names.split(",") if name.strip())
    text = _GROUPING.sub(r"\1 ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    metrics = set()
    for match in _IDENTIFIER.finditer(text):
        name, rest = match.group(), text[match.end() :].lstrip()
        if rest.startswith("(") or name.lower() in KEYWORDS or name in AGGREGATIONS:
            continue
        metrics.add(name)
    return Reference(frozenset(metrics), frozenset(labels), frozenset(status_values))


def test_references_separates_metrics_from_functions_labels_and_numbers() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, stage) ("
        'rate(a_seconds_bucket{stage!="x", job=~"a|b"}[$__rate_interval])))'
        " / on(instance) group_left(worker) b_info * 1e9 > bool 0.5 and c:recorded offset 5m"
        ' or max without (pod) (d_total{outcome="failed"}) unless sum(e)'
    )
    assert references(expr) == Reference(
        metrics=frozenset({"a_seconds_bucket", "b_info", "c:recorded", "d_total", "e"}),
        labels=frozenset({"le", "stage", "job", "instance", "worker", "pod", "outcome"}),
        status_values=frozenset({"failed"}),
    )


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule.get("alert") or rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}


def keda_expressions() -> dict[str, str]:
    scaled = yaml.safe_load((ROOT / "deploy/k8s/keda-scaledobject.yaml").read_text())
    triggers = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    return {f"trigger {i}": trigger["metadata"]["query"] for i, trigger in enumerate(triggers)}


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} [{target['refId']}]": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


# --- The files by themselves: promtool ----------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config_and_its_rules() -> None:
    config = _promtool("check", "config", PROMETHEUS_CONFIG)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS: 1 rule files found" in config.stdout  # the config's rule_files reach alerts.yml
    rules = _promtool("check", "rules", RULES)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in rules.stdout


def test_promtool_refuses_a_rule_with_broken_promql(tmp_path: Path) -> None:
    broken = tmp_path / "alerts.yml"
    broken.write_text(RULES.read_text().replace("expr: mimicmotion_store_up == 0", "expr: mimicmotion_store_up ==", 1))
    result = _promtool("check", "rules", broken)
    assert result.returncode != 0 and "MimicMotionRedisUnreachable" in result.stdout + result.stderr


def test_every_alert_fires_on_its_condition_in_promtools_rule_tests() -> None:
    result = _promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {check["alertname"] for test in tests for check in test.get("alert_rule_test", []) if check["exp_alerts"]}
    assert firing == set(rule_expressions()), "every alert has a rule test in which it fires"


def test_the_alerts_the_issue_asks_for_exist() -> None:
    assert set(rule_expressions()) == {
        "MimicMotionRedisUnreachable", "MimicMotionGatewayMetricsAbsent", "MimicMotionNoLiveWorker",
        "MimicMotionQueueNotDraining", "MimicMotionJobFailureRateHigh", "MimicMotionGpuMemoryNearTotal",
        "MimicMotionNoLiveWorkerForQueue", "MimicMotionWebhookDeliveriesFailing",
    }  # fmt: skip


def test_the_kubernetes_prometheus_rule_holds_the_same_rules() -> None:
    rule = yaml.safe_load((ROOT / "deploy/k8s/prometheus-rule.yaml").read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


# --- A live stack: the gateway, one worker with its metrics server, one finished job ------------------


@dataclass(frozen=True)
class Series:
    """Sample names and the label names seen on each, from one or more expositions."""

    labels: dict[str, set[str]]

    @classmethod
    def parse(cls, *expositions: str) -> "Series":
        labels: dict[str, set[str]] = {}
        for text in expositions:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels.setdefault(sample.name, set()).update(sample.labels)
        return cls(labels)


@dataclass(frozen=True)
class LiveStack:
    gateway_url: str
    worker_metrics_url: str
    gateway_metrics: str
    worker_metrics: str


@pytest.fixture(scope="module")
def live_stack(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, short_inputs_url: str
) -> Iterator[LiveStack]:
    tmp_path = tmp_path_factory.mktemp("monitoring")
    metrics_port = free_port()
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp_path))
        env = stack_env(redis_url=redis_url, data_dir=tmp_path / "data", model_dir=tiny_model_dir,
                        worker_metrics_port=metrics_port, **FAST_REAPER)  # fmt: skip
        services = start_stack(stack, env, tmp_path, workers=["m0"])
        client = stack.enter_context(httpx.Client(base_url=services.base_url, trust_env=False, timeout=10))
        job_id = submit(client, short_inputs_url, QUICK, seed=1)
        (job,) = wait_for_terminal(client, [job_id], timeout_s=120, stack=services).values()
        assert job["status"] == "succeeded", job
        # And one that fails, so the failures-by-code series exists (a garbage video: input_not_video).
        garbage = {**job_body(short_inputs_url, QUICK, 2), "video_url": f"{short_inputs_url}/garbage.mp4"}
        bad = client.post("/jobs", json=garbage)
        (failed,) = wait_for_terminal(client, [bad.json()["id"]], timeout_s=120, stack=services).values()
        assert failed["status"] == "failed" and failed["error"]["code"] == "input_not_video", failed
        worker_metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

        def worker_counted_the_job() -> str | None:
            body = httpx.get(worker_metrics_url, trust_env=False, timeout=5).text
            counted = 'mimicmotion_worker_jobs_total{outcome="succeeded"} 1.0' in body
            return body if counted and 'mimicmotion_worker_jobs_total{outcome="failed"} 1.0' in body else None

        worker_metrics = wait_for(worker_counted_the_job, timeout_s=30, message="the worker to count the job")
        gateway_metrics = client.get("/metrics").text
        yield LiveStack(services.base_url, worker_metrics_url, gateway_metrics, worker_metrics)


def cuda_worker_exposition(monkeypatch: pytest.MonkeyPatch) -> Series:
    """What GpuMemoryCollector exports in a process that has initialised CUDA, with stand-in readings."""
    cuda = types.SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: True, current_device=lambda: 0,
        mem_get_info=lambda device: (2 * 2**30, 80 * 2**30), memory_allocated=lambda device: 2**30,
        memory_reserved=lambda device: 2 * 2**30, max_memory_allocated=lambda device: 3 * 2**30,
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    families = list(GpuMemoryCollector().collect())
    assert families, "the collector yields the GPU gauges once CUDA is initialised"
    return Series({sample.name: set(sample.labels) for family in families for sample in family.samples})


def test_every_metric_and_label_the_rules_and_dashboard_name_is_exported(
    live_stack: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = Series.parse(live_stack.gateway_metrics, live_stack.worker_metrics)
    gpu = cuda_worker_exposition(monkeypatch)
    assert not set(gpu.labels) & set(live.labels), "a CPU worker serves no GPU readings (absent, not zero)"
    exported = {**live.labels, **gpu.labels}
    expressions = {**{f"rule {k}": v for k, v in rule_expressions().items()},
                   **{f"panel {k}": v for k, v in dashboard_expressions().items()},
                   **{f"KEDA {k}": v for k, v in keda_expressions().items()}}  # fmt: skip
    assert len(expressions) >= 25, sorted(expressions)
    named: set[str] = set()
    problems = []
    for where, expr in expressions.items():
        ref = references(expr)
        assert ref.metrics, f"{where}: no metric found in {expr!r}"
        named |= ref.metrics
        problems += [f"{where}: {name} is not exported" for name in sorted(ref.metrics - set(exported))]
        known_labels = TARGET_LABELS.union(*(exported.get(name, set()) for name in ref.metrics))
        problems += [f"{where}: label {label} is on none of its metrics" for label in sorted(ref.labels - known_labels)]
        statuses = {status.value for status in JobStatus}
        problems += [f"{where}: {value!r} is no job status" for value in sorted(ref.status_values - statuses)]
    assert not problems, "\n".join(problems)
    # The panels the issue asks for have their metrics (webhooks and the oldest job's age have none yet).
    for wanted in ("mimicmotion_jobs", "mimicmotion_queue_depth", "mimicmotion_running_jobs",
                   "mimicmotion_live_workers", "mimicmotion_stage_seconds_bucket", "mimicmotion_worker_jobs_total",
                   "mimicmotion_worker_gpu_memory_total_bytes", "mimicmotion_store_up"):  # fmt: skip
        assert wanted in named, wanted


# --- A real Prometheus on that stack ------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_url(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping the live stack every second, with the shipped rules evaluated every second."""
    tmp_path = tmp_path_factory.mktemp("prometheus")
    shipped = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {"mimicmotion-gateway": live_stack.gateway_url, "mimicmotion-worker": live_stack.worker_metrics_url}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        # The shipped jobs and paths, with loopback targets for the compose DNS names.
        "scrape_configs": [
            {"job_name": job["job_name"], "metrics_path": job["metrics_path"],
             "static_configs": [{"targets": [targets[job["job_name"]].split("/")[2]]}]}
            for job in shipped["scrape_configs"]
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    args = [_tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={tmp_path / 'data'}"]  # fmt: skip
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url, process, tmp_path), timeout_s=60, message="Prometheus to be ready", interval_s=0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(url: str, process: subprocess.Popen[bytes], log_dir: Path) -> bool:
    assert process.poll() is None, (log_dir / "prometheus.log").read_text()[-4000:]
    try:
        return httpx.get(f"{url}/-/ready", trust_env=False, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _api(url: str, path: str, **params: str) -> Any:
    body = httpx.get(f"{url}/api/v1/{path}", params=params, trust_env=False, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]


def test_prometheus_scrapes_the_stack_and_evaluates_every_rule_and_panel(prometheus_url: str) -> None:
    def targets_up() -> bool:
        active = _api(prometheus_url, "targets")["activeTargets"]
        return len(active) == 2 and all(target["health"] == "up" for target in active)

    wait_for(targets_up, timeout_s=30, message="both targets to be scraped", interval_s=0.2)

    def rules_evaluated_on_scraped_data() -> list[dict[str, Any]] | None:
        # Until both targets have been scraped, some rules evaluate on no data: wait for a quiet evaluation.
        (group,) = _api(prometheus_url, "rules")["groups"]
        rules = group["rules"]
        scraped = _api(prometheus_url, "query", query="count(mimicmotion_store_up) + count(mimicmotion_worker_info)")
        if not scraped["result"] or any(rule.get("lastEvaluation", "").startswith("0001") for rule in rules):
            return None
        return rules if not any(rule["state"] != "inactive" for rule in rules) else None

    rules = wait_for(rules_evaluated_on_scraped_data, timeout_s=30, message="a quiet rule evaluation", interval_s=0.2)
    assert {rule["name"] for rule in rules} == set(rule_expressions())
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
    # Every dashboard query parses and evaluates (Grafana's $__rate_interval: four scrapes at least).
    for where, expr in dashboard_expressions().items():
        query = re.sub(r"\$\{?__\w+\}?", "1m", expr)
        response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, trust_env=False, timeout=10)
        assert response.json()["status"] == "success", f"{where}: {response.text}"
    # A store-wide panel shows the live numbers: one live worker, the finished job counted.
    assert _api(prometheus_url, "query", query="max(mimicmotion_live_workers)")["result"][0]["value"][1] == "1"
    succeeded = _api(prometheus_url, "query", query='max(mimicmotion_jobs{status="succeeded"})')
    assert succeeded["result"][0]["value"][1] == "1"


# --- The compose profile ------------------------------------------------------------------------------


def _compose_monitoring_config() -> dict[str, Any]:
    # A clean environment: the compose defaults, not the developer's variables (as in test_deploy.py).
    env = {"PATH": os.environ["PATH"], "HOME": str(ROOT)}
    result = subprocess.run(
        [_tool("docker-compose"), "-f", "docker-compose.yml", "--profile", "monitoring", "config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            mounts[target] = Path(source)
    return mounts


def test_compose_monitoring_profile_provisions_prometheus_and_grafana() -> None:
    services = _compose_monitoring_config()["services"]
    assert {"prometheus", "grafana", "flower"} <= set(services)
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), services[name]["ports"]

    prometheus = services["prometheus"]
    mounts = _mounts(prometheus)
    config_flag = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    config_in_container = Path(config_flag.split("=", 1)[1])
    assert mounts[str(config_in_container.parent)] == PROMETHEUS_CONFIG.parent
    # The scraped names and ports are the compose services and the ports they serve metrics on.
    scrape = {job["job_name"]: job["dns_sd_configs"][0] for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())[
        "scrape_configs"]}  # fmt: skip
    assert scrape["mimicmotion-gateway"]["names"] == ["gateway"] and scrape["mimicmotion-gateway"]["port"] == 8000
    assert "127.0.0.1:8000:8000/tcp" in services["gateway"]["ports"]
    assert scrape["mimicmotion-worker"]["names"] == ["worker", "worker-wan"]  # every model's worker service
    assert scrape["mimicmotion-worker"]["port"] == 9100
    assert "MIMICMOTION_WORKER_METRICS_PORT=9100" in (ROOT / "docker/worker.Dockerfile").read_text()

    grafana = services["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == DATASOURCES.parents[1]
    (provider,) = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    used = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    used |= {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert used == {datasource["uid"]}
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == (
        f"{provider['options']['path']}/{DASHBOARD.name}"
    )
