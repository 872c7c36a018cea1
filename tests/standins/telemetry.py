"""What the App Insights ingestion service refuses in one telemetry item.

`EnvelopeRules.problems(envelope, size)` returns the reasons an item would get
a per-item 400, empty when it is accepted. On top of the swagger (swagger.py):

- the item's serialized size is at most 64 KB;
- `iKey` is the resource's instrumentation key (a GUID, any case);
- `time` is ISO 8601 UTC with a trailing Z (fraction of 1-7 digits optional)
  and not older than 48 hours (refused per item with the service's message
  "103: Field 'time' on type 'Envelope' is older than the allowed min date",
  azure-rest-api-specs Monitor.Exporters examples/track.json);
- `data.baseType` is a known type and `data.baseData` validates against its
  definition (MetricData -> MetricsData), with `ver` 2;
- `name` is `Microsoft.ApplicationInsights.<Type>` or the classic SDKs'
  `Microsoft.ApplicationInsights.<ikey without dashes>.<Type>`, Type matching
  baseType (e.g. Event for EventData, Metric for MetricData);
- `sampleRate`, when given, is in (0, 100];
- keys of `properties` and `measurements` are 1-150 characters;
- `duration` is `[d.]hh:mm:ss[.fffffff]` and below 1000 days;
- MetricData carries exactly one data point.

Deliberately stricter than the service, which truncates or drops instead of
refusing: over-long property names (dropped there), over-long values
(truncated there, swagger maxLength here), extra metric points (ignored
there). Silent data loss is a bug for this product, so the stand-in makes it
visible. Inferred rather than documented: the envelope-name, sampleRate and
ver rules, and that a bad `duration` is refused. The wording of the messages
is the stand-in's own.
"""

import datetime
import re
from typing import Any

from .swagger import SwaggerSchema, utf16_length

MAX_ITEM_BYTES = 64 * 1024
MAX_AGE = datetime.timedelta(hours=48)
MAX_KEY_LENGTH = 150

# baseType -> (swagger definition, <Type> of the envelope name)
BASE_TYPES = {
    "EventData": ("EventData", "Event"),
    "MessageData": ("MessageData", "Message"),
    "RequestData": ("RequestData", "Request"),
    "RemoteDependencyData": ("RemoteDependencyData", "RemoteDependency"),
    "ExceptionData": ("ExceptionData", "Exception"),
    "MetricData": ("MetricsData", "Metric"),
    "PageViewData": ("PageViewData", "PageView"),
    "PageViewPerfData": ("PageViewPerfData", "PageViewPerformance"),
    "AvailabilityData": ("AvailabilityData", "Availability"),
}

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}")
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?Z")
_NAME = re.compile(r"Microsoft\.ApplicationInsights\.(?:(?P<ikey>[0-9a-fA-F]{32})\.)?"
                   r"(?P<type>\w+)")
_DURATION = re.compile(r"(?:(\d+)\.)?(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,7})?")


def parse_time(text: str) -> datetime.datetime | None:
    """An envelope time as an aware datetime, or None when malformed."""
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = int((match.group(7) or "0").ljust(6, "0")[:6])
    try:
        return datetime.datetime(year, month, day, hour, minute, second, fraction,
                                 tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def duration_ok(text: str) -> bool:
    match = _DURATION.fullmatch(text)
    if match is None:
        return False
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return days < 1000 and hours < 24 and minutes < 60 and seconds < 60


class EnvelopeRules:
    def __init__(self, schema: SwaggerSchema, instrumentation_key: str) -> None:
        self.schema = schema
        self.ikey = instrumentation_key.lower()

    def problems(self, envelope: Any, size: int) -> list[str]:
        if not isinstance(envelope, dict):
            return ["the item is not a JSON object"]
        problems = []
        if size > MAX_ITEM_BYTES:
            problems.append(f"the item is {size} bytes, over the 64 KB limit")
        problems += self.schema.validate({k: v for k, v in envelope.items() if k != "data"},
                                         "TelemetryEnvelope", "envelope")
        problems += self._ikey(envelope.get("iKey"))
        problems += self._time(envelope.get("time"))
        rate = envelope.get("sampleRate")
        if isinstance(rate, (int, float)) and not isinstance(rate, bool) and not (
                0 < rate <= 100):
            problems.append("envelope.sampleRate: outside (0, 100]")
        problems += self._data(envelope.get("data"), envelope.get("name"))
        return problems

    def _ikey(self, ikey: Any) -> list[str]:
        if not isinstance(ikey, str) or not _GUID.fullmatch(ikey):
            return ["envelope.iKey: missing or not a GUID"]
        if ikey.lower() != self.ikey:
            return ["envelope.iKey: Invalid instrumentation key"]
        return []

    @staticmethod
    def _time(text: Any) -> list[str]:
        if not isinstance(text, str):
            return []  # reported by the schema
        moment = parse_time(text)
        if moment is None:
            return ["envelope.time: not ISO 8601 UTC with a trailing Z"]
        age = datetime.datetime.now(datetime.timezone.utc) - moment
        if age > MAX_AGE:
            # The service's own words (azure-rest-api-specs, Monitor.Exporters
            # examples/track.json): a per-item 400.
            return [f"103: Field 'time' on type 'Envelope' is older than the allowed "
                    f"min date. Expected: now - {MAX_AGE // datetime.timedelta(milliseconds=1)}ms, "
                    f"Actual: now - {age // datetime.timedelta(milliseconds=1)}ms"]
        return []

    def _name_ok(self, name: Any, short: str) -> bool:
        match = _NAME.fullmatch(name) if isinstance(name, str) else None
        return match is not None and match["type"] == short and (
            match["ikey"] is None or match["ikey"].lower() == self.ikey.replace("-", ""))

    def _data(self, data: Any, name: Any) -> list[str]:
        if not isinstance(data, dict):
            return ["envelope.data: required but missing or not an object"]
        base_type = data.get("baseType")
        if base_type not in BASE_TYPES:
            return [f"envelope.data.baseType: unknown type {base_type!r}"]
        definition, short = BASE_TYPES[base_type]
        problems = []
        if not self._name_ok(name, short):
            problems.append(f"envelope.name: {name!r} does not name a {base_type} item "
                            f"(expected Microsoft.ApplicationInsights.{short})")
        base = data.get("baseData")
        if not isinstance(base, dict):
            return problems + ["envelope.data.baseData: required but missing or not an object"]
        where = f"baseData({base_type})"
        problems += self.schema.validate(base, definition, where)
        if isinstance(base.get("ver"), int) and base["ver"] != 2:
            problems.append(f"{where}.ver: must be 2")
        for field in ("properties", "measurements"):
            if isinstance(base.get(field), dict):
                problems += [f"{where}.{field}: key {key[:40]!r}... is not 1-150 characters"
                             for key in base[field]
                             if not 0 < utf16_length(key) <= MAX_KEY_LENGTH]
        if isinstance(base.get("duration"), str) and not duration_ok(base["duration"]):
            problems.append(f"{where}.duration: not [d.]hh:mm:ss[.fffffff] below 1000 days")
        if base_type == "MetricData" and isinstance(base.get("metrics"), list) and len(
                base["metrics"]) > 1:
            problems.append(f"{where}.metrics: only one data point is stored")
        return problems
