"""The Grafana dashboard in dashboards/ queries only metrics the gateway exports."""

from __future__ import annotations

import json
import re

from tests.support import ROOT, Gateway

DASHBOARD = ROOT / "dashboards" / "llm-gateway.json"
_SERIES = re.compile(r"\bgateway_[a-z_]+")
_HISTOGRAM_PARTS = re.compile(r"_(bucket|sum|count)$")


def queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]
    assert expressions
    return {_HISTOGRAM_PARTS.sub("", name) for expr in expressions for name in _SERIES.findall(expr)}


def test_every_metric_the_dashboard_queries_exists(gateway: Gateway) -> None:
    exported = {line.split()[2] for line in gateway.metrics().splitlines() if line.startswith("# TYPE ")}
    missing = queried_metrics() - exported
    assert not missing, f"{DASHBOARD.name} queries metrics /metrics does not have: {sorted(missing)}"


def test_every_panel_reads_the_chosen_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert "datasource" in names
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
