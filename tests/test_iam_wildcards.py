"""Least privilege that is true: no IAM statement allows a destructive action on every resource of a kind unless it
is narrowed (a name prefix, a condition) or explains, in a ``# Wide:`` comment beside it, why AWS offers nothing
narrower. Key policies are out of scope: their ``Resource: "*"`` means the key itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((REPO / "deployment").glob("*.template"))
# Verbs that remove, overwrite or disable something that already exists.
DESTRUCTIVE = re.compile(
    r"^[a-z0-9-]+:(\*|(Delete|Detach|Update|Remove|Deactivate|Disable|Cancel|Replace|Reject|Transfer|Stop|Terminate|"
    r"Put|Set|Untag|Reset|Revoke|Purge|Disassociate)\w*)$|^apigateway:(DELETE|PATCH|PUT)$"
)
WIDE_MARKER = "# Wide:"


def _strings(value: Any) -> list[str]:
    """The literal text of a resource (a string, a !Sub, or a list of them); other functions become '*'."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Fn::Sub":
            return _strings(argument[0] if isinstance(argument, list) else argument)
        if name == "Fn::If":
            return _strings(argument[1:])
        return ["arn:resolved-at-deployment"]
    return ["*"]


def is_wildcard(resource: str) -> bool:
    """True for "*" and for ARNs whose resource part is only a wildcard (``cert/*``, ``stateMachine:*``)."""
    if resource == "*":
        return True
    resource = re.sub(r"\$\{[^}]*\}", "name", resource)  # a !Sub variable names one thing (partition, bucket)
    parts = resource.split(":", 5)
    if resource.startswith("arn:") and len(parts) == 6 and parts[2] == "s3":
        return parts[5].split("/")[0] in ("", "*")  # objects of a named bucket are that bucket's
    resource_part = parts[-1] if resource.startswith("arn:") else resource
    last = re.split(r"[/:]", resource_part)[-1]
    return last == "*"


def statements(template: Path) -> Iterator[tuple[str, int, int, dict[str, Any]]]:
    """(resource id, first line, last line, statement) of every IAM identity-policy statement."""
    document, matches = decode(str(template))
    assert not matches, matches
    for logical_id, resource in document["Resources"].items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in properties.get("Policies") or []]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [properties["PolicyDocument"]]
        else:
            continue
        for policy in documents:
            for statement in policy["Statement"]:
                yield logical_id, statement.start_mark.line + 1, statement.end_mark.line, statement


def explained(lines: list[str], first: int, last: int) -> bool:
    """A ``# Wide:`` comment inside the statement or in the comment block right above it."""
    if any(WIDE_MARKER in line for line in lines[first - 1 : last]):
        return True
    above = first - 2
    while above >= 0 and lines[above].strip().startswith("#"):
        if WIDE_MARKER in lines[above]:
            return True
        above -= 1
    return False


def unexplained_wide_statements(template: Path) -> list[str]:
    lines = template.read_text().splitlines()
    found = []
    for logical_id, first, last, statement in statements(template):
        if statement.get("Effect") != "Allow" or "Condition" in statement:
            continue
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else actions or []
        destructive = [a for a in actions if isinstance(a, str) and DESTRUCTIVE.match(a)]
        wide = [r for r in _strings(statement.get("Resource")) if is_wildcard(r)]
        if destructive and wide and not explained(lines, first, last):
            found.append(f"{template.name}:{first} {logical_id}: {destructive} on {wide}")
    return found


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_no_destructive_action_on_a_wildcard_is_left_unnarrowed_and_unexplained(template: Path) -> None:
    assert unexplained_wide_statements(template) == []


def test_the_check_catches_a_wide_statement_and_accepts_a_narrowed_or_explained_one(tmp_path: Path) -> None:
    template = tmp_path / "probe.template"
    template.write_text(
        """AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Version: "2012-10-17", Statement: []}
      Policies:
        - PolicyName: p
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: [iot:DeleteCertificate, iot:DescribeCertificate]
                Resource: !Sub arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:cert/*
              - Effect: Allow
                Action: iot:DeleteTopicRule
                Resource: !Sub arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:rule/iot_dr_*
              # Wide: the replication role must delete whatever thing the primary deleted.
              - Effect: Allow
                Action: iot:DeleteThing
                Resource: "*"
              - Effect: Allow
                Action: states:DeleteStateMachine
                Resource: "*"
                Condition: {StringEquals: {aws:ResourceTag/Solution: IoTDR}}
"""
    )

    found = unexplained_wide_statements(template)

    assert len(found) == 1
    assert "iot:DeleteCertificate" in found[0] and "cert/*" in found[0]


def _resources_by_role(template: Path) -> dict[str, list[tuple[list[str], list[str]]]]:
    """(actions, literal resources) of each statement, by the logical id of the role or policy holding it."""
    found: dict[str, list[tuple[list[str], list[str]]]] = {}
    for logical_id, _, _, statement in statements(template):
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else list(actions or [])
        found.setdefault(logical_id, []).append((actions, _strings(statement.get("Resource"))))
    return found


def test_the_launch_function_holds_no_right_over_any_certificate() -> None:
    """Replication never copies a health checker's identity, so uninstalling has no certificate to remove."""
    launch = _resources_by_role(REPO / "deployment" / "disaster-recovery-for-aws-iot.template")["LaunchFunctionRole"]
    assert launch, "LaunchFunctionRole has no statements"
    on_certificates = [resources for _, resources in launch if any(":cert/" in r for r in resources)]
    assert on_certificates == []
    acting_on_certificates = re.compile(
        r"^iot:(\*|\w*Certificate\w*|(Attach|Detach)(Policy|PrincipalPolicy|ThingPrincipal))$"
    )
    assert [a for actions, _ in launch for a in actions if acting_on_certificates.match(a)] == []
