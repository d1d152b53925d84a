"""CloudEvents JSON in: one (``application/cloudevents+json``) or a batch (``application/cloudevents-batch+json``).

A CloudEvent (spec 1.0, JSON format) is mapped field by field to our event, then validated
exactly as a JSON event is (:func:`rating.events.parse_event`: the same refusal codes):

==========================  =====================================================
CloudEvents                 our event
==========================  =====================================================
``id``                      ``id``
``type``                    ``type``
``time``                    ``timestamp`` (required here: rating needs a moment)
``subject`` or ``customer`` ``customer`` (both given: they must agree)
``data`` (a JSON object)    ``properties``
``agent``/``session``/      ``attribution``
``order`` (extensions)
``billingsource``           ``billing_source``
``specversion``             must be ``1.0``
``source``, ``dataschema``  required / optional, checked for type, not kept
others (extensions)         ignored, as the spec lets a consumer do
==========================  =====================================================

``data_base64`` (binary data) and a ``datacontenttype`` that is not JSON are refused
(``invalid_record``): usage properties are a JSON object.
"""

from __future__ import annotations

from typing import Any

from rating.errors import EventError
from rating.events import Sourced, UsageEvent, parse_event, parse_json
from rating.refusals import Refusal

#: The media types of one CloudEvent and of a batch of them (their JSON event formats).
SINGLE, BATCH = "application/cloudevents+json", "application/cloudevents-batch+json"
#: The context attributes taken over under another name, and those checked but not kept.
_MAPPED = {"id": "id", "type": "type", "time": "timestamp", "billingsource": "billing_source"}
_ATTRIBUTION = ("agent", "session", "order")


def media_type(content_type: str) -> str:
    """The bare, lower-case media type of a ``Content-Type`` header (no parameters)."""
    return content_type.split(";")[0].strip().lower()


def _refuse(reason: str) -> EventError:
    return EventError(Refusal.INVALID_RECORD, f"CloudEvent: {reason}")


def _json_content(kind: Any) -> bool:
    """Whether a ``datacontenttype`` says JSON (``application/json``, ``text/json`` or any ``+json``); one that is
    not text says nothing."""
    if not isinstance(kind, str):
        return False
    bare = media_type(kind)
    return bare in ("application/json", "text/json") or bare.endswith("+json")


def to_event_fields(cloud: Any) -> dict[str, Any]:
    """Our event's fields from one decoded CloudEvent; :class:`EventError` (``invalid_record``) if it is not one."""
    if not isinstance(cloud, dict):
        raise _refuse(f"expected a JSON object, got {type(cloud).__name__}")
    if cloud.get("specversion") != "1.0":
        raise _refuse(f"specversion must be '1.0', got {cloud.get('specversion')!r}")
    if not isinstance(cloud.get("source"), str) or not cloud["source"]:
        raise _refuse("source is required (a non-empty URI-reference)")
    if "data_base64" in cloud:
        raise _refuse("data_base64 is not accepted: usage properties are a JSON object in data")
    if "datacontenttype" in cloud and not _json_content(cloud["datacontenttype"]):
        raise _refuse(f"datacontenttype must be JSON, got {cloud['datacontenttype']!r}")
    subject, customer = cloud.get("subject"), cloud.get("customer")
    if subject is not None and customer is not None and subject != customer:
        raise _refuse(f"subject {subject!r} and the customer extension {customer!r} disagree")
    fields: dict[str, Any] = {ours: cloud[theirs] for theirs, ours in _MAPPED.items() if theirs in cloud}
    if customer is not None or subject is not None:
        fields["customer"] = customer if customer is not None else subject
    if "data" in cloud and cloud["data"] is not None:
        fields["properties"] = cloud["data"]
    attribution = {name: cloud[name] for name in _ATTRIBUTION if name in cloud}
    if attribution:
        fields["attribution"] = attribution
    return fields


def parse_cloudevent(data: Any) -> UsageEvent:
    """One decoded CloudEvent as our event, validated as a JSON event is (the same codes)."""
    return parse_event(to_event_fields(data))


def read_single(body: bytes) -> UsageEvent:
    """The event of an ``application/cloudevents+json`` body."""
    return parse_cloudevent(parse_json(body))


def record(item: Any) -> Sourced:
    """One item of an ``application/cloudevents-batch+json`` array: the event, or the reason it is not one."""
    try:
        return Sourced("", event=parse_cloudevent(item))
    except EventError as error:
        return Sourced("", error=str(error))
