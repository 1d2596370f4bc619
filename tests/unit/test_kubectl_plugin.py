"""`kubectl lbipam`'s pure parts: bars, tables, ages, policies in words, offline validation."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest

from lbipam.kubectl import cli
from lbipam.kubectl.cluster import addresses_in
from lbipam.kubectl.netpol import describe_policy
from lbipam.kubectl.render import Style, age, bar, table
from lbipam.kubectl.why import asked_for, asked_lines
from lbipam.objects import service_request

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def test_a_bar_shows_use_and_one_address_of_a_huge_pool_is_not_nothing() -> None:
    assert bar(127, 254, Style()) == "[##########----------]  50%"
    assert bar(0, 254, Style()) == "[--------------------]   0%"
    assert bar(1, 2**64, Style()) == "[#-------------------]  <1%"
    assert bar(4, 4, Style(colour=True)) == "[\x1b[31m####################\x1b[0m] 100%"


def test_a_table_pads_columns_as_kubectl_get_does_and_ignores_colour_codes() -> None:
    coloured = Style(colour=True)("Ready", "good")
    assert table(["NAME", "STATUS"], [["public", coloured], ["v6", "Conflict"]]) == [
        "NAME     STATUS",
        f"public   {coloured}",
        "v6       Conflict",
    ]


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("2026-01-01T11:59:55Z", "5s"),
        ("2026-01-01T11:57:00Z", "3m"),
        ("2026-01-01T09:00:00Z", "3h"),
        ("2025-12-28T12:00:00Z", "4d"),
    ],
)
def test_ages_read_like_kubectl(stamp: str, shown: str) -> None:
    assert age(stamp, NOW) == shown


def test_an_address_is_found_in_a_message_only_as_itself() -> None:
    found = addresses_in("default/web: allocated 192.168.10.100 from public; 2001:db8::7.")
    assert found == {ipaddress.ip_address("192.168.10.100"), ipaddress.ip_address("2001:db8::7")}
    assert ipaddress.ip_address("192.168.10.1") not in found


def test_why_says_which_other_namespaces_a_service_shares_with() -> None:
    body = {
        "metadata": {
            "namespace": "shop",
            "name": "web",
            "annotations": {
                "lbipam.io/sharing-key": "edge",
                "lbipam.io/sharing-cross-namespace": "post,blog",
            },
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }
    asked = asked_for(service_request(body), body)
    assert asked["sharingCrossNamespace"] == ["blog", "post"]
    assert "  sharing key: edge (ports 80/TCP, also with namespaces blog, post)" in asked_lines(
        asked
    )


def test_a_source_range_policy_in_words() -> None:
    policy = {
        "metadata": {"name": "lbipam-web", "namespace": "shop"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                    "ports": [{"port": 8080, "protocol": "TCP"}],
                },
                {"from": [{"namespaceSelector": {}}], "ports": [{"port": 8080}]},
            ],
        },
    }
    assert describe_policy(policy) == [
        "isolates pods app=web in shop for ingress: only what the rules below admit reaches "
        "them, on any port",
        "admits TCP/8080 from 10.0.0.0/8",
        "admits TCP/8080 from any pod in any namespace",
    ]


BAD_POOL = """\
apiVersion: lbipam.io/v1alpha1
kind: IPPool
metadata:
  name: broken
spec:
  addresses: [192.168.50.0/24, 192.168.60.20-192.168.60.10]
---
apiVersion: lbipam.io/v1alpha1
kind: IPPool
metadata:
  name: fine
spec:
  addresses: [192.168.70.0/30]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-a-pool
"""


def test_validate_offline_names_the_bad_entry_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "pools.yaml"
    manifest.write_text(BAD_POOL)

    code = cli.main(["validate", "--offline", str(manifest)])

    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0].split() == ["FILE", "POOL", "ADDRESSES", "RESULT"]
    assert out[1].split() == [str(manifest), "broken", "-", "1", "error"]
    assert out[2].split() == [str(manifest), "fine", "2", "ok"]
    assert " ".join(line.strip() for line in out[4:6]) == (
        'error: broken: addresses[1] "192.168.60.20-192.168.60.10": range end is below its '
        'start; write it as "192.168.60.10-192.168.60.20"'
    )
    assert out[-1] == "Checked offline only (--offline)."


def test_validate_offline_of_good_pools_passes_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "pools.yaml"
    manifest.write_text(BAD_POOL.split("---\n")[1])

    assert cli.main(["validate", "--offline", "-o", "json", str(manifest)]) == 0
    assert '"ok": true' in capsys.readouterr().out


def test_every_command_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("pools", "services", "why", "who", "validate"):
        with pytest.raises(SystemExit) as done:
            cli.main([command, "--help"])
        assert done.value.code == 0
        assert "--output" in capsys.readouterr().out
