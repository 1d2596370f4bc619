"""`lbipam convert`: a MetalLB or Cilium user's pools, as IPPools, and what does not carry over."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbipam.cli import main
from lbipam.convert.dispatch import convert
from lbipam.convert.model import Converted
from lbipam.objects import pool_spec

SAMPLES = Path(__file__).parent / "samples"
METALLB = SAMPLES / "metallb.yaml"
CILIUM = SAMPLES / "cilium.yaml"


def converted(path: Path) -> dict[str, Converted]:
    results = convert(yaml.safe_load_all(path.read_text()))
    return {r.source.rsplit("/", 1)[-1].rsplit(" ", 1)[-1]: r for r in results}


def spec(result: Converted) -> dict[str, Any]:
    assert result.pool is not None
    return dict(result.pool["spec"])


def test_every_converted_pool_is_one_lbipam_reads_without_error() -> None:
    results = [*converted(METALLB).values(), *converted(CILIUM).values()]
    pools = [r.pool for r in results if r.pool is not None]

    assert len(pools) == 10
    for pool in pools:
        assert (pool["apiVersion"], pool["kind"]) == ("lbipam.io/v1alpha1", "IPPool")
        assert pool_spec(pool).error is None, pool


def test_a_metallb_pool_keeps_its_addresses_and_hands_out_every_address_of_a_cidr() -> None:
    first = converted(METALLB)["first-pool"]

    assert spec(first) == {
        "addresses": ["192.168.10.0/24", "192.168.9.1-192.168.9.5", "fc00:f853:ccd:e799::/124"],
        "allowFirstLastIPs": True,
    }
    assert (first.lost, first.notes) == ((), ())


def test_metallbs_auto_assign_and_buggy_ip_switches_carry_over() -> None:
    assert spec(converted(METALLB)["cheap"]) == {
        "addresses": ["192.168.144.0/20"],
        "allowFirstLastIPs": True,
        "autoAssign": False,
        "avoidBuggyIPs": True,
    }


def test_metallbs_priorities_keep_their_order_with_lbipams_higher_first() -> None:
    pools = converted(METALLB)
    # MetalLB: priority 10 before 50 before unset (0), all before pools without allocation.
    priority = {name: spec(pools[name]).get("priority", 0) for name in pools if pools[name].pool}

    assert priority["by-namespace-label"] > priority["ns-and-labels"] > priority["pinned"]
    assert priority["pinned"] > priority["first-pool"] == priority["cheap"] == 0
    assert any("priority 50 ranked" in note for note in pools["ns-and-labels"].notes)


def test_metallbs_namespaces_and_selectors_become_one_selector_each() -> None:
    pools = converted(METALLB)

    assert spec(pools["ns-and-labels"])["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": ["namespace-a", "namespace-b"],
            }
        ]
    }
    assert spec(pools["ns-and-labels"])["serviceSelector"] == {
        "matchExpressions": [{"key": "serviceSelector-key", "operator": "In", "values": ["value1"]}]
    }
    assert spec(pools["by-namespace-label"])["namespaceSelector"] == {
        "matchLabels": {"team": "payments"}
    }
    assert pools["ns-and-labels"].lost == ()


def test_a_cidr_with_host_bits_is_written_as_the_network_metallb_reads() -> None:
    pool = converted(METALLB)["by-namespace-label"]

    assert spec(pool)["addresses"] == ["192.168.30.0/24"]
    assert any("192.168.30.7/24 written 192.168.30.0/24" in note for note in pool.notes)


@pytest.mark.parametrize(
    ("path", "name", "why"),
    [
        (METALLB, "either-selector", "any one of several selectors"),
        (CILIUM, "by-service-name", "serviceSelector on io.kubernetes.service.name"),
    ],
)
def test_a_selector_an_ippool_cannot_say_is_lost_and_the_pool_closed_meanwhile(
    path: Path, name: str, why: str
) -> None:
    pool = converted(path)[name]

    assert spec(pool)["autoAssign"] is False and "serviceSelector" not in spec(pool)
    assert any(why in text for text in pool.lost)


def test_both_namespaces_and_namespace_selectors_are_lost() -> None:
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "mixed", "namespace": "metallb-system"},
        "spec": {
            "addresses": ["10.0.0.0/24"],
            "serviceAllocation": {
                "namespaces": ["a"],
                "namespaceSelectors": [{"matchLabels": {"team": "b"}}],
                "nodeSelectors": [{}],
            },
        },
    }

    (result,) = convert([pool])

    assert spec(result)["autoAssign"] is False and "namespaceSelector" not in spec(result)
    assert any("namespaces and namespaceSelectors" in text for text in result.lost)
    assert any("serviceAllocation.nodeSelectors: not known" in text for text in result.lost)


@pytest.mark.parametrize(
    ("path", "name", "what"),
    [
        (METALLB, "example", "on the local network"),
        (METALLB, "external", "to BGP peers"),
        (CILIUM, "policy1", "on the local network"),
        (CILIUM, "rack0", "to BGP peers"),
    ],
)
def test_an_announcement_is_not_converted_and_says_what_to_pair_lbipam_with(
    path: Path, name: str, what: str
) -> None:
    result = converted(path)[name]

    assert result.pool is None
    (why,) = result.lost
    assert f"announces addresses {what}" in why
    assert "kube-vip" in why and "does not announce" in why


def test_a_cilium_pool_keeps_its_blocks_ranges_and_selector() -> None:
    pool = converted(CILIUM)["blue-pool"]

    # allowFirstLastIPs unset: Cilium 1.15 reserves the ends of each CIDR, and so does the IPPool.
    assert spec(pool) == {
        "addresses": ["10.0.10.0/24", "2004::/64", "20.0.20.100-20.0.20.200", "1.2.3.4"],
        "exclude": ["2004::", "2004::ffff:ffff:ffff:ffff"],
        "allowFirstLastIPs": False,
        "serviceSelector": {
            "matchExpressions": [{"key": "color", "operator": "In", "values": ["blue", "cyan"]}]
        },
    }
    assert pool.lost == ()
    assert any("1.16 and later hand them out" in note for note in pool.notes)


def test_cilium_reserving_first_and_last_ips_excludes_them_in_ipv6_too() -> None:
    pool = converted(CILIUM)["reserved-ends"]

    assert spec(pool) == {
        "addresses": ["10.0.11.0/24", "2004:1::/64", "2004:2::/127"],
        # lbipam skips IPv4 network and broadcast itself; a /127 has no ends to spare.
        "exclude": ["2004:1::", "2004:1::ffff:ffff:ffff:ffff"],
        "allowFirstLastIPs": False,
        "disabled": True,
    }
    assert pool.lost == ()


def test_ciliums_namespace_label_becomes_a_namespace_selector_and_cidrs_are_blocks() -> None:
    pool = converted(CILIUM)["old-cidrs"]

    assert spec(pool) == {
        "addresses": ["172.16.0.0/24"],
        "allowFirstLastIPs": True,
        "serviceSelector": {"matchLabels": {"color": "red"}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tenant-a"}},
    }


def test_lists_are_unpacked_others_skipped_and_a_taken_name_refused() -> None:
    metallb = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "public", "namespace": "metallb-system"},
        "spec": {"addresses": ["10.0.0.0/24"]},
    }
    cilium = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": "public"},
        "spec": {"blocks": [{"cidr": "10.1.0.0/24"}], "bogus": 1},
    }
    listed = {"apiVersion": "v1", "kind": "List", "items": [metallb, {"kind": "ConfigMap"}]}

    first, other, second = convert([listed, cilium])

    assert first.pool is not None and first.lost == ()
    assert other.pool is None and other.notes == ("skipped: not MetalLB's or Cilium's",)
    assert second.pool is None
    assert "spec.bogus: not known to this converter" in second.lost
    assert any("IPPool name public is taken by metallb.io" in text for text in second.lost)


def test_the_command_prints_ippools_and_warns_per_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["convert", "-f", str(METALLB)]) == 0

    out, err = capsys.readouterr()
    documents = list(yaml.safe_load_all(out))
    assert [d["metadata"]["name"] for d in documents][:2] == ["first-pool", "cheap"]
    assert "# from metallb.io/v1beta1 IPAddressPool metallb-system/first-pool" in out
    assert "L2Advertisement metallb-system/example: lost: not converted" in err


def test_check_fails_when_anything_was_lost_and_passes_when_nothing_was(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["convert", "-f", str(CILIUM), "--check"]) == 1
    assert "--check: 4 thing(s) could not be converted" in capsys.readouterr().err

    clean = "\n---\n".join(CILIUM.read_text().split("\n---\n")[:3])
    monkeypatch.setattr("sys.stdin", io.StringIO(clean))
    assert main(["convert", "-f", "-", "--check"]) == 0
    assert len(list(yaml.safe_load_all(capsys.readouterr().out))) == 3


def test_unreadable_input_is_refused_with_its_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")

    assert main(["convert", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert main(["convert", "-f", str(tmp_path / "bad.yaml")]) == 2
    assert "a document is not an object" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert"])
