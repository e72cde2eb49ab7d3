"""Schemathesis hooks for irgan's contract test (tests/it/schemathesis.rs; loaded with
SCHEMATHESIS_HOOKS=irgan_hooks and this directory on PYTHONPATH).

`POST /v1/feedback` takes NDJSON as `application/x-ndjson`, documented as the array of events
that goes one JSON object per line. Schemathesis has no serializer for that media type; this
one writes a generated array as NDJSON lines (anything else, e.g. a negative non-array value,
as one JSON line), so the NDJSON body is fuzzed like the JSON one.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")


# The documents of one search list must have distinct ids (`duplicate_document`), a rule JSON
# Schema cannot state for objects. In generated requests meant to be valid, a repeated id is
# made distinct (a suffix, the id kept within its 256 characters) before the request is sent;
# requests meant to be invalid are left alone.
SEARCH_LISTS = ("/v1/search/rank", "/v1/search/feedback")


def _distinct_ids(documents):
    if not isinstance(documents, list):
        return
    seen = set()
    for n, doc in enumerate(documents):
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            continue
        doc_id = doc["id"]
        if doc_id in seen:
            suffix = f"~{n}"
            doc_id = doc_id[: 256 - len(suffix)] + suffix
            doc["id"] = doc_id
        seen.add(doc_id)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.operation.path not in SEARCH_LISTS:
        return
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    body = case.body
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict):
            _distinct_ids(item.get("documents"))
