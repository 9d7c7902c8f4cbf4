"""Which things a fleet operation covers: a fleet-index query, or ListThings where indexing is off.

``thing_names(iot, "thingName:dr-*")`` yields matching names page by page (100 per SearchIndex page), so a fleet of
any size is walked without holding it in memory. With thing indexing off, only ``thingName:<pattern>`` queries (and
``*``) can be answered, from ListThings with the pattern matched locally; other queries raise ``IndexingDisabled``.
Query syntax: https://docs.aws.amazon.com/iot/latest/developerguide/query-syntax.html

The health checkers' own things are never part of a fleet (``iot_dr.health.checker_identity``): no sync copies them,
no comparison reports them, no bulk deletion removes them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types_boto3_iot import IoTClient
    from types_boto3_iot.type_defs import ThingDocumentTypeDef

from iot_dr.health.checker_identity import without_checker_things

DEFAULT_QUERY = "thingName:*"
PAGE_SIZE = 100


class IndexingDisabled(Exception):
    """The query needs fleet indexing, which is off in this region."""


def indexing_enabled(iot: IoTClient) -> bool:
    """Whether fleet indexing of the registry is on in ``iot``'s region (``thingIndexingMode`` other than ``OFF``,
    https://docs.aws.amazon.com/iot/latest/developerguide/managing-index.html). ClientError propagates."""
    mode = iot.get_indexing_configuration()["thingIndexingConfiguration"]["thingIndexingMode"]
    return bool(mode != "OFF")


def name_pattern(query_string: str) -> str | None:
    """The thing-name pattern of a ``thingName:<pattern>`` (or ``*``) query; None for any other query."""
    query = query_string.strip()
    if query == "*":
        return "*"
    if query.startswith("thingName:") and " " not in query:
        return query.removeprefix("thingName:")
    return None


def search_things(iot: IoTClient, query_string: str) -> Iterator[ThingDocumentTypeDef]:
    """Every thing document SearchIndex returns for ``query_string``, following ``nextToken``."""
    token: str | None = None
    while True:
        page = iot.search_index(
            queryString=query_string, maxResults=PAGE_SIZE, **({"nextToken": token} if token else {})
        )
        yield from page.get("things", [])
        token = page.get("nextToken")
        if not token:
            return


def thing_names(iot: IoTClient, query_string: str = DEFAULT_QUERY) -> Iterator[str]:
    """Names of the things matching ``query_string`` in ``iot``'s region, health checkers' things left out; raises
    ``IndexingDisabled``."""
    return without_checker_things(_matching_names(iot, query_string))


def _matching_names(iot: IoTClient, query_string: str) -> Iterator[str]:
    if indexing_enabled(iot):
        for thing in search_things(iot, query_string):
            yield thing["thingName"]
        return
    pattern = name_pattern(query_string)
    if pattern is None:
        raise IndexingDisabled(
            f"fleet indexing is off in {iot.meta.region_name}: only thingName:<pattern> queries work without it"
        )
    for page in iot.get_paginator("list_things").paginate():
        for listed in page.get("things", []):
            if fnmatch.fnmatchcase(listed["thingName"], pattern):
                yield listed["thingName"]
