"""Lambda's invocation payload limits, which moto 5.2.5 does not enforce.

https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html: "For synchronous invocations, the maximum payload
size is 6 MB. For asynchronous invocations, the maximum payload size is 1 MB." The 6 MB also bounds a
synchronous response (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); a larger
response is a function error of type ``Function.ResponseSizeTooLarge``. The Lambda runtime calls these
functions; they need no patch of their own.
"""

from __future__ import annotations

import json

from moto.awslambda.exceptions import LambdaClientError

MAX_SYNCHRONOUS_BYTES = 6 * 1024 * 1024
MAX_ASYNCHRONOUS_BYTES = 1024 * 1024


class RequestTooLargeException(LambdaClientError):
    code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            "RequestTooLargeException", f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
        )


def check_request(body: bytes | str | None, invocation_type: str) -> None:
    """Raise ``RequestTooLargeException`` (HTTP 413) for a payload over the limit of its invocation type."""
    size = len(body.encode() if isinstance(body, str) else body or b"")
    limit = MAX_ASYNCHRONOUS_BYTES if invocation_type == "Event" else MAX_SYNCHRONOUS_BYTES
    if size > limit:
        raise RequestTooLargeException(limit)


def limited_response(payload: str, errored: bool) -> tuple[str, bool]:
    """The response a synchronous caller gets: the function's own, or the size error when it exceeds 6 MB."""
    if len(payload.encode()) <= MAX_SYNCHRONOUS_BYTES:
        return payload, errored
    error = {
        "errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_SYNCHRONOUS_BYTES} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    return json.dumps(error), True
