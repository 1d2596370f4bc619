"""An exec credential plugin's output, and when the plugin runs again."""

from __future__ import annotations

import asyncio
import datetime
import json
import stat
import sys
import time
from pathlib import Path

import pytest

from lbipam.kube.credentials import Credentials, identity
from lbipam.kube.exec_plugin import ExecError, ExecPlugin, ExecSpec, parse_output

V1 = "client.authentication.k8s.io/v1"


def credential(**status: str) -> bytes:
    return json.dumps({"apiVersion": V1, "kind": "ExecCredential", "status": status}).encode()


def test_a_token_with_its_expiry() -> None:
    issued = parse_output(credential(token="t", expirationTimestamp="2030-01-02T03:04:05Z"), V1)
    assert issued.token == "t"
    assert issued.cert is None
    assert issued.expires == 1893553445.0
    assert not issued.expired()


def test_a_client_certificate_without_expiry_lasts_until_refused() -> None:
    issued = parse_output(credential(clientCertificateData="C", clientKeyData="K"), V1)
    assert issued.cert == (b"C", b"K")
    assert issued.expires is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"oops", "printed no JSON ExecCredential"),
        (credential(), "neither status.token nor status.clientCertificateData"),
        (credential(clientCertificateData="C"), "without clientKeyData"),
        (credential(token="t", expirationTimestamp="soon"), "expirationTimestamp 'soon'"),
    ],
)
def test_output_a_kubeconfig_cannot_use_says_why(raw: bytes, why: str) -> None:
    with pytest.raises(ExecError, match=why):
        parse_output(raw, V1)


def test_output_of_another_version_is_refused() -> None:
    with pytest.raises(ExecError, match="printed apiVersion"):
        parse_output(credential(token="t"), "client.authentication.k8s.io/v1beta1")


def plugin_script(folder: Path, seconds_valid: int) -> Path:
    """A plugin issuing a new token per run, counting its runs in a file beside it."""
    script = folder / "plugin"
    script.write_text(
        f"""#!{sys.executable}
import datetime, json, os, pathlib
runs = pathlib.Path({str(folder / "runs")!r})
runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
asked = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds={seconds_valid})
status = {{"token": f"token-{{len(runs.read_text())}}",
          "expirationTimestamp": until.strftime("%Y-%m-%dT%H:%M:%SZ")}}
print(json.dumps({{"apiVersion": asked["apiVersion"], "kind": "ExecCredential", "status": status}}))
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


async def test_the_plugin_runs_once_until_its_token_expires(tmp_path: Path) -> None:
    plugin = ExecPlugin(ExecSpec(str(plugin_script(tmp_path, 2)), V1, interactive_mode="Never"))

    first = await plugin.credential()
    again = await plugin.credential()
    assert (first.token, again.token, plugin.runs) == ("token-1", "token-1", 1)

    await asyncio.sleep(max(0.0, (first.expires or 0) - time.time()) + 0.1)
    assert (await plugin.credential()).token == "token-2"


async def test_a_refused_token_makes_the_plugin_run_again(tmp_path: Path) -> None:
    plugin = ExecPlugin(ExecSpec(str(plugin_script(tmp_path, 3600)), V1, interactive_mode="Never"))
    first = await plugin.credential()
    plugin.refused(first)
    assert (await plugin.credential()).token == "token-2"


async def test_a_missing_plugin_says_how_to_install_it(tmp_path: Path) -> None:
    spec = ExecSpec(str(tmp_path / "absent"), V1, install_hint="brew install absent")
    with pytest.raises(ExecError, match=r"cannot run .*absent: No such file.*brew install absent"):
        await ExecPlugin(spec).credential()


async def test_kopf_is_given_the_plugins_token_and_when_to_log_in_again(tmp_path: Path) -> None:
    spec = ExecSpec(str(plugin_script(tmp_path, 600)), V1, interactive_mode="Never")

    now = await identity(Credentials("https://198.18.0.1:6443", exec=spec))

    assert now.token == "token-1"
    assert now.expires is not None
    left = now.expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(seconds=590) < left <= datetime.timedelta(seconds=600)
