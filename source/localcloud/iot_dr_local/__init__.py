"""A two-region local AWS cloud for Disaster Recovery for AWS IoT, built on moto.

Everything moto lacks is added here as small extensions (registry events, a rules engine, global-table
replication, Lambda execution environments in worker processes, stream pollers, CloudTrail events); product
code never knows it runs locally. This package ships with the product but works only with the ``local`` extra
installed (``pip install 'disaster-recovery-for-aws-iot[local]'``): importing it without moto raises ImportError,
which is how the ``iot-dr`` command tells that ``iot-dr local`` is not installed.
"""

from importlib.util import find_spec

_MISSING = [name for name in ("moto", "psutil") if find_spec(name) is None]
if _MISSING:
    raise ImportError(
        f"the local cloud needs {' and '.join(_MISSING)}: pip install 'disaster-recovery-for-aws-iot[local]'",
        name=_MISSING[0],
    )
