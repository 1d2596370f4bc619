"""deploy/guardrails.yaml, docs/security.md's table of its rules and the tests agree.

A reviewer reads each rule's CEL in deploy/guardrails.yaml, with the attack it stops next to
it, and its message in docs/security.md; tests/integration/test_guardrails.py makes each forbidden
write on the real control plane. These checks keep the three saying the same thing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.integration.test_guardrails import FORBIDDEN, first_of_each_rule, refusal

REPO = Path(__file__).resolve().parents[2]
GUARDRAILS = REPO / "deploy" / "guardrails.yaml"
SECURITY = REPO / "docs" / "security.md"
LBIPAM = "system:serviceaccount:lbipam-system:lbipam"


def documents() -> list[tuple[str, dict[str, Any]]]:
    """Each object in the file with its own text (comments included)."""
    texts = re.split(r"^---$", GUARDRAILS.read_text(), flags=re.M)
    found = [(text, yaml.safe_load(text)) for text in texts]
    return [(text, doc) for text, doc in found if doc]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def test_every_policy_checks_only_lbipams_service_account_and_fails_closed() -> None:
    policies = of_kind("ValidatingAdmissionPolicy")
    assert len(policies) == 5
    for name, policy in policies.items():
        spec = policy["spec"]
        assert spec["failurePolicy"] == "Fail", name
        assert spec["matchConditions"] == [
            {
                "name": "lbipam-service-account",
                "expression": f"request.userInfo.username == '{LBIPAM}'",
            }
        ], name
        assert all(v.get("reason") == "Forbidden" for v in spec["validations"]), name


def test_every_policy_has_one_binding_that_denies() -> None:
    policies = of_kind("ValidatingAdmissionPolicy")
    bindings = of_kind("ValidatingAdmissionPolicyBinding")
    assert set(bindings) == set(policies)
    for name, binding in bindings.items():
        assert binding["spec"]["policyName"] == name
        assert binding["spec"]["validationActions"] == ["Deny"]


def test_every_rule_says_which_attack_it_stops() -> None:
    for text, doc in documents():
        if doc["kind"] == "ValidatingAdmissionPolicy":
            stops = re.findall(r"^ *# Stops: \S", text, flags=re.M)
            assert len(stops) == len(doc["spec"]["validations"]), doc["metadata"]["name"]


def test_every_rule_has_a_forbidden_write_that_the_integration_tests_make() -> None:
    rules = {
        (name, index)
        for name, policy in of_kind("ValidatingAdmissionPolicy").items()
        for index in range(len(policy["spec"]["validations"]))
    }
    assert {(case.policy, case.rule) for case in FORBIDDEN} == rules


def documented_rules() -> list[list[str]]:
    text = SECURITY.read_text()
    start = text.index("| policy | rule | a write it refuses | message |")
    table = text[start : text.index("\n\n", start)].splitlines()[2:]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in table]


def test_the_security_page_lists_each_rule_with_a_refused_write_and_its_message() -> None:
    expected = [
        [
            f"`{case.policy}`",
            str(case.rule + 1),
            case.story,
            refusal(case).partition("denied request: ")[2],
        ]
        for case in first_of_each_rule()
    ]
    assert documented_rules() == expected


def test_the_documented_command_that_turns_them_off_selects_every_binding() -> None:
    command = re.search(
        r"^\$ kubectl delete validatingadmissionpolicybindings -l (\S+)$",
        SECURITY.read_text(),
        re.M,
    )
    assert command is not None
    key, value = command[1].split("=")
    for name, binding in of_kind("ValidatingAdmissionPolicyBinding").items():
        assert binding["metadata"]["labels"].get(key) == value, name
