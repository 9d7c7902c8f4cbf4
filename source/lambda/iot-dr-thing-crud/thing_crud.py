"""Step Functions task: Things, type associations and certificate attachments in the secondary region."""

from iot_dr.core.event_types import Family
from iot_dr.secondary.workers import worker_handler

handler = worker_handler(Family.THINGS)
