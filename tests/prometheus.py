"""A real Prometheus server (Debian's `prometheus` package) scraping operator replicas."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane.cluster import die_with_parent, free_port
from tests.kit import eventually


class PrometheusError(Exception):
    """Prometheus refused a query (bad syntax, wrong types): its own words."""


class Prometheus:
    """Debian's prometheus server, scraping each target port every `scrape_interval` seconds."""

    def __init__(self, *target_ports: int, scrape_interval: int = 1) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: apt-get install -y prometheus", False)
        self.scrape_interval = scrape_interval
        self.folder = Path(tempfile.mkdtemp(prefix="lbipam-prometheus-"))
        self.port = free_port()
        every = f"{scrape_interval}s"
        config = {
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "scrape_configs": [
                {
                    "job_name": "lbipam",
                    "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in target_ports]}],
                }
            ],
        }
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(self.folder / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [
                binary,
                f"--config.file={self.folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )

    def get(self, path: str) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as error:
            # Prometheus answers a query it cannot run with 400 or 422 and says why.
            raise PrometheusError(json.loads(error.read()).get("error", str(error))) from None

    def api(self, endpoint: str, **params: str | list[str]) -> Any:
        """The `data` of one HTTP API call, e.g. api("query", query="up")."""
        query = urllib.parse.urlencode(params, doseq=True)
        return self.get(f"/api/v1/{endpoint}?{query}")["data"]

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                    return True
            except OSError:
                return False

        eventually(ready, timeout=30, what="Prometheus to be ready")

    def value(self, query: str) -> float | None:
        """The single value of an instant query, or None when it has no result."""
        result = self.api("query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, query: str, expected: float, timeout: float = 20) -> None:
        try:
            eventually(lambda: self.value(query) == expected, timeout=timeout, what=query)
        except AssertionError as error:
            raise AssertionError(f"{error}: {self.value(query)} != {expected}") from None

    def wait_at_least(self, query: str, least: float, timeout: float = 20) -> None:
        eventually(
            lambda: (self.value(query) or 0) >= least, timeout=timeout, what=f"{query} >= {least}"
        )

    def stop(self) -> None:
        self.popen.terminate()
        self.popen.wait(10)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
