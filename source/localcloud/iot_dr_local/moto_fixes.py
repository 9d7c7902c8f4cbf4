"""Corrections to moto behaviour that differs from AWS in ways the solution's workflows hit.

Each fix names the AWS behaviour it restores. Fixes that belong to a bigger extension live with it; these
are the small stand-alone ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.iot.exceptions import CertificateStateException, DeleteConflictException
from moto.iot.models import FakeCertificate, IoTBackend

from iot_dr_local.patching import Patches

_patches = Patches()


def _validation_delete(backend: IoTBackend, cert: FakeCertificate, force_delete: bool = False) -> None:
    """DeleteCertificate checks only *this* certificate's attachments.

    moto resolves every attached principal and fails with AttributeError as soon as a policy is attached to a
    thing group (a group has no certificate ID), so no certificate could be deleted in such an account.
    """
    if cert.status == "ACTIVE":
        raise CertificateStateException(
            "Certificate must be deactivated (not ACTIVE) before deletion.", cert.certificate_id
        )
    if any(principal == cert.arn for principal, _ in backend.principal_things):
        raise DeleteConflictException(f"Things must be detached before deletion (arn: {cert.arn})")
    if not force_delete and any(principal == cert.arn for principal, _ in backend.principal_policies):
        raise DeleteConflictException(f"Certificate policies must be detached before deletion (arn: {cert.arn})")


_FIXES: dict[str, Callable[..., Any]] = {"_validation_delete": _validation_delete}


def install() -> None:
    if not _patches.applied:
        for name, fix in _FIXES.items():
            _patches.set(IoTBackend, name, fix)


def uninstall() -> None:
    _patches.restore()
