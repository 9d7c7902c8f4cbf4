"""Structured logging with the Logger of Powertools for AWS Lambda, configured once per process by the entry point.

Modules log with ``logging.getLogger(__name__)`` and pass structured keys with ``extra=``. ``configure_logging``
puts the Powertools Logger's handler (one JSON object per line on stdout: ``level``, ``location``, ``message``,
``timestamp``, ``service`` and every ``extra=`` key) on the root logger, so every module's records share it, and
``lambda_entry`` adds the Lambda context keys (``function_name``, ``function_request_id``, ``cold_start``...) and
a correlation id taken from the event
(https://docs.powertools.aws.dev/lambda/python/latest/core/logger/). Events are never logged whole: they can carry
secrets (the health check's), so ``log_event`` is off whatever ``POWERTOOLS_LOGGER_LOG_EVENT`` says.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

SERVICE = "iot-dr"
# JSON with json.dumps's usual ", " and ": " separators, as the tools printed before Powertools (whose default is
# compact): operators grep the tools' output for keys such as '"received": 2'.
_SERIALIZER = functools.partial(json.dumps, default=str)
_NOISY_LOGGERS = ("botocore", "boto3", "urllib3")

HandlerT = TypeVar("HandlerT", bound=Callable[[Any, Any], Any])

_logger: Logger | None = None
_lock = threading.Lock()


def configure_logging(level: str | None = None) -> Logger:
    """The process's Powertools Logger, created by the first call with its handler on the root logger.

    ``level`` (a logging level name) defaults to ``LOG_LEVEL``, then ``INFO``; ``POWERTOOLS_SERVICE_NAME``
    overrides the ``service`` key (default ``iot-dr``). Later calls change nothing, so warm Lambda containers don't
    duplicate the handler, and a process hosting several functions (tests, tools) keeps the level its entry point
    chose.
    """
    global _logger
    with _lock:
        if _logger is None:
            chosen = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
            logger = Logger(
                service=os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE,
                level=chosen,
                stream=sys.stdout,
                json_serializer=_SERIALIZER,
            )
            root = logging.getLogger()
            root.setLevel(chosen)
            root.addHandler(logger.registered_handler)
            for noisy in _NOISY_LOGGERS:
                logging.getLogger(noisy).setLevel(logging.WARNING)
            _logger = logger
        return _logger


def lambda_entry(correlation_id_path: str | None = None) -> Callable[[HandlerT], HandlerT]:
    """Decorate a Lambda handler: logging is configured at its first invocation (never at import), and each
    invocation's records carry the Lambda context keys and the correlation id found at ``correlation_id_path``
    (a JMESPath expression over the event; no correlation id when it finds nothing).

    Called without a context (``None``: a script or a test calling the handler directly) the handler runs with
    logging configured but no context keys. The handler's exceptions propagate unchanged.
    """

    def decorate(handler: HandlerT) -> HandlerT:
        @functools.wraps(handler)
        def entry(event: Any, context: Any) -> Any:
            logger = configure_logging()
            if context is None:
                logger.clear_state()  # no keys left over from an earlier invocation
                return handler(event, context)
            injected = logger.inject_lambda_context(
                handler, log_event=False, correlation_id_path=correlation_id_path, clear_state=True
            )
            return injected(event, context)

        return entry  # type: ignore[return-value]  # same signature as ``handler``

    return decorate
