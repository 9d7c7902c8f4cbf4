"""The local cloud's region outage switch: an HTTP route on its endpoint that takes a region's API down and up.

The local cloud serves both regions on one endpoint and tells them apart by the region in each request's signature
(SigV4 credential scope). While a region is down, every request signed for it is answered 503
``ServiceUnavailableException`` (global services excepted, see ``faults.GLOBAL_SERVICES``) and DynamoDB global-table
replication into and out of it is held, as in a regional outage; bringing it up releases the held writes in order.

The route, on the local cloud's endpoint (``iot-dr local outage``/``restore`` and the drill use it):

- ``GET /moto-api/iot-dr/outage`` answers ``{"down": ["<region>", ...]}``;
- ``POST /moto-api/iot-dr/outage`` with ``{"region": "<region>", "down": true|false}`` switches a region and answers
  the same document; a body of another shape gets 400.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from iot_dr_local.patching import Patches

ROUTE = "/moto-api/iot-dr/outage"
REQUEST_TIMEOUT = 10.0

SetDown = Callable[[str, bool], None]
DownRegions = Callable[[], list[str]]


class OutageRoute:
    """Adds ``ROUTE`` to moto's own API; install before the server answers its first ``/moto-api`` request (moto
    builds that application once, from the routes it has then)."""

    def __init__(self, set_down: SetDown, down_regions: DownRegions) -> None:
        self._set_down, self._down_regions = set_down, down_regions
        self._patches = Patches()

    def install(self) -> None:
        # Imported here: ``switch`` is for commands that must not wait seconds for moto to import.
        import moto.moto_api._internal.urls as moto_api_urls

        if not self._patches.applied:
            routes = {**moto_api_urls.url_paths, "{0}" + ROUTE: self._handle}
            self._patches.set(moto_api_urls, "url_paths", routes)

    def uninstall(self) -> None:
        self._patches.restore()

    def _handle(self, request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
        if request.method == "POST":
            try:
                body = json.loads(request.get_data() or b"{}")
                region, down = body["region"], body["down"]
                if not isinstance(region, str) or not region or not isinstance(down, bool):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return _json(400, {"message": 'expected {"region": "<region>", "down": true|false}'})
            self._set_down(region, down)
        return _json(200, {"down": sorted(self._down_regions())})


def _json(status: int, document: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json"}, json.dumps(document)


def switch(endpoint: str, region: str, down: bool) -> list[str]:
    """Take ``region`` of the local cloud at ``endpoint`` down (or up); the regions down afterwards.

    Raises OSError (urllib's URLError) when the local cloud does not answer."""
    body = json.dumps({"region": region, "down": down}).encode()
    request = urllib.request.Request(
        endpoint.rstrip("/") + ROUTE, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
        return list(json.loads(response.read())["down"])
