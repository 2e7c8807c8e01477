"""Schemathesis hooks for revloop's contract run (tests/contract/run).

`POST /api/v1/events/bulk` takes NDJSON (`application/x-ndjson`), a media type schemathesis
has no serializer for: a generated string is sent as it is, anything else as one JSON line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, list):
        return "".join(json.dumps(item) + "\n" for item in value).encode()
    return (json.dumps(value) + "\n").encode()
