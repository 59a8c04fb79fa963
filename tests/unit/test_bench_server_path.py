"""bench.server_path's cases: what --cases accepts, and that each asks routes.bench.yaml for an
agent it has (a case naming no agent would measure a fast 404, not the gateway's path)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from bench.processes import ROOT
from bench.run import bench_routes
from bench.server_path import CASES, parse_args, parse_cases


def test_cases_are_kept_in_the_order_given_each_once() -> None:
    assert parse_cases("conv-stream, json,conv-stream,") == ["conv-stream", "json"]
    here = ["--other", str(ROOT)]  # an A/B needs the other checkout named
    assert parse_args(here).cases == ["json"]
    assert parse_args([*here, "--cases", ",".join(CASES)]).cases == list(CASES)


@pytest.mark.parametrize("text", ["", ",", "json,streamed", "JSON"])
def test_unknown_or_no_cases_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_cases(text)


def test_every_case_asks_for_an_agent_of_the_bench_routes() -> None:
    routes, values = bench_routes(8080, Path("/tmp/secrets.yaml"), 8081)
    config = yaml.safe_load(routes)
    assert config["server"]["listen"] == "127.0.0.1:8080"
    assert config["providers"]["canned"]["url"] == values["BENCH_UPSTREAM_URL"] == "http://127.0.0.1:8081/v1"
    assert {model for model, _ in CASES.values()} <= set(config["agents"])
    assert {stream for _, stream in CASES.values()} == {False, True}
