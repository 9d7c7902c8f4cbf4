"""Corrections to moto 5.2.5 where it differs from AWS in ways the solution, its tests or its users can hit.

One module per service; each fix names the AWS behaviour it restores and its documentation page
(``docs/local-cloud.md`` lists them all). Fixes that belong to a bigger extension (streams, rules, events)
live with it.
"""

from __future__ import annotations

from iot_dr_local.moto_fixes import dynamodb, iot_registry, iot_shadows, route53

_MODULES = (dynamodb, iot_registry, iot_shadows, route53)


def install() -> None:
    """Apply every fix (idempotent)."""
    for module in _MODULES:
        module.install()


def uninstall() -> None:
    """Give moto its own behaviour back."""
    for module in reversed(_MODULES):
        module.uninstall()
