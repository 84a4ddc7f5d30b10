"""The shipped deploy/ files agree with callflow and with each other: the commands they run
parse with callflow's own CLI, the probes hit the health routes, the grace periods cover the
drain, and HAProxy accepts its config as shipped."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from lbkit import REPO, SHIPPED_CFG

from callflow.cli import build_parser
from callflow.server._drain import HARD_DEADLINE
from callflow.server._health import LIVE_PATH, READY_PATH
from tests.support.debian import require_binary

DEPLOY = REPO / "deploy"


def documents(path: Path) -> dict[str, dict[str, Any]]:
    """``{"Kind/name": manifest}`` of a multi-document YAML file."""
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(path.read_text())}


def dockerfile_command() -> list[str]:
    """ENTRYPOINT + CMD of deploy/Dockerfile (exec form)."""
    text = (DEPLOY / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    return [*entry, *cmd]


def serve_args(argv: list[str]) -> Any:
    """``argv`` (starting with ``callflow``) parsed by the real CLI; must be ``serve``."""
    assert argv[0] == "callflow"
    args = build_parser().parse_args(argv[1:])
    assert args.command_func.__name__ == "_serve"
    return args


def test_the_image_serves_on_8000_with_json_logs() -> None:
    args = serve_args(dockerfile_command())
    assert (args.host, args.port, args.log_format) == ("0.0.0.0", 8000, "json")
    assert "EXPOSE 8000" in (DEPLOY / "Dockerfile").read_text()


def test_kubernetes_probes_and_grace_period_match_the_drain() -> None:
    manifests = documents(DEPLOY / "k8s" / "callflow.yaml")
    pod = manifests["Deployment/callflow"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    entry = dockerfile_command()[: dockerfile_command().index("json") + 1]
    args = serve_args(
        [
            *entry,
            *(a.replace("$(CALLFLOW_PUBLIC_URL)", "https://x.example") for a in container["args"]),
        ]
    )
    assert container["readinessProbe"]["httpGet"]["path"] == READY_PATH
    assert container["livenessProbe"]["httpGet"]["path"] == LIVE_PATH
    (port,) = container["ports"]
    assert port["containerPort"] == 8000
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = float(pre_stop[1]) + args.drain_timeout + HARD_DEADLINE
    # SIGKILL never before callflow's own hard deadline, and not long after it either
    assert needed <= pod["terminationGracePeriodSeconds"] <= needed + 15
    headless = manifests["Service/callflow-headless"]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True  # draining pods stay reachable
    lb = documents(DEPLOY / "k8s" / "haproxy.yaml")
    env = {
        e["name"]: e.get("value")
        for e in lb["Deployment/haproxy"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CALLFLOW_SERVICE"].startswith("callflow-headless.")
    assert env["CALLFLOW_SERVICE"].endswith(":8000")
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["configMapGenerator"][0]["files"] == ["haproxy.cfg"]


def test_compose_grace_period_covers_the_drain() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    service = compose["services"]["callflow"]
    command = [
        re.sub(r"\$\{CALLFLOW_PUBLIC_URL:\?[^}]*\}", "https://x.example", c)
        for c in service["command"]
    ]
    entry = dockerfile_command()[: dockerfile_command().index("json") + 1]
    args = serve_args([*entry, *command])
    grace = float(service["stop_grace_period"].rstrip("s"))
    assert args.drain_timeout + HARD_DEADLINE <= grace <= args.drain_timeout + HARD_DEADLINE + 15
    assert compose["services"]["haproxy"]["environment"]["CALLFLOW_SERVICE"] == "callflow:8000"


@pytest.mark.e2e
def test_haproxy_accepts_the_shipped_config(tmp_path: Path) -> None:
    binary = require_binary("haproxy", package="haproxy")
    env = {"CALLFLOW_LB_STATS": str(tmp_path / "s.sock"), "CALLFLOW_LB_MAXCONN": "1000"}
    checked = subprocess.run(
        [binary, "-c", "-f", str(SHIPPED_CFG)], capture_output=True, text=True, env=env
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
