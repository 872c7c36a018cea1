"""A validator for the JSON-schema subset the App Insights ingestion swagger
uses (specs/appinsights-track-v2.1.swagger.json, copied from
Azure/azure-rest-api-specs Monitor.Exporters v2.1).

Supported: `$ref` to #/definitions, `allOf` (properties and required merged),
`type` (object, array, string, number, integer, boolean), `required`,
`properties`, `additionalProperties` (a schema), `items`, `enum`, `maxLength`,
`format` (int32, float, double, date-time) and `x-nullable`.

Rules, stricter where the swagger is silent:
- a required field is missing when absent, null, "" or [] (the service says
  "required but missing or empty");
- null is accepted only where the swagger marks `x-nullable: true`;
- maxLength counts UTF-16 code units, as the .NET service does;
- booleans are not numbers; `integer` and `format: int32` need an integral
  value within int32; numbers must be finite (NaN/Infinity are not JSON anyway).

`validate(value, "EventData")` returns a list of problems as
"<path>: <sentence>", empty when the value conforms.
"""

import json
import math
import pathlib
import re
from typing import Any

DEFAULT_SWAGGER = (pathlib.Path(__file__).parent / "specs"
                   / "appinsights-track-v2.1.swagger.json")

_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_INT32 = (-2**31, 2**31 - 1)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


class SwaggerSchema:
    def __init__(self, document: dict) -> None:
        self.definitions: dict[str, dict] = document["definitions"]

    @classmethod
    def load(cls, path: pathlib.Path = DEFAULT_SWAGGER) -> "SwaggerSchema":
        return cls(json.loads(pathlib.Path(path).read_text()))

    def validate(self, value: Any, definition: str, where: str = "") -> list[str]:
        problems: list[str] = []
        self._check(value, {"$ref": f"#/definitions/{definition}"}, where or definition,
                    problems)
        return problems

    def _resolve(self, schema: dict) -> tuple[dict, bool]:
        """The schema with $ref followed and allOf merged, and its nullability."""
        nullable = bool(schema.get("x-nullable"))
        while "$ref" in schema:
            schema = self.definitions[schema["$ref"].rsplit("/", 1)[-1]]
            nullable = nullable or bool(schema.get("x-nullable"))
        if "allOf" in schema:
            merged: dict = {"type": "object", "properties": {}, "required": []}
            for part in schema["allOf"]:
                resolved, _ = self._resolve(part)
                merged["properties"].update(resolved.get("properties", {}))
                merged["required"] += resolved.get("required", [])
            schema = merged
        return schema, nullable

    def _check(self, value: Any, schema: dict, where: str, problems: list[str]) -> None:
        schema, nullable = self._resolve(schema)
        if value is None:
            if not nullable:
                problems.append(f"{where}: null is not allowed")
            return
        expected = schema.get("type", "object" if "properties" in schema else None)
        actual = _json_type(value)
        if expected is not None and actual != expected and not (
                expected == "integer" and actual == "number"):
            problems.append(f"{where}: expected {expected}, got {actual}")
            return
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if actual == "object":
            self._check_object(value, schema, where, problems)
        elif actual == "array" and "items" in schema:
            for i, item in enumerate(value):
                self._check(item, schema["items"], f"{where}[{i}]", problems)
        elif actual == "string":
            self._check_string(value, schema, where, problems)
        elif actual == "number":
            self._check_number(value, schema, expected, where, problems)

    def _check_object(self, value: dict, schema: dict, where: str, problems: list[str]
                      ) -> None:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        for name in required:
            if value.get(name) in (None, "", []):
                problems.append(f"{where}.{name}: required but missing or empty")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in required and item in (None, "", []):
                continue
            if name in properties:
                self._check(item, properties[name], f"{where}.{name}", problems)
            elif isinstance(extra, dict):
                self._check(item, extra, f"{where}[{name!r}]", problems)

    @staticmethod
    def _check_string(value: str, schema: dict, where: str, problems: list[str]) -> None:
        limit = schema.get("maxLength")
        if limit is not None and utf16_length(value) > limit:
            problems.append(f"{where}: longer than {limit} characters")
        if schema.get("format") == "date-time" and not _DATE_TIME.fullmatch(value):
            problems.append(f"{where}: not an ISO 8601 date-time")

    @staticmethod
    def _check_number(value: int | float, schema: dict, expected: str | None, where: str,
                      problems: list[str]) -> None:
        if not math.isfinite(value):
            problems.append(f"{where}: not a finite number")
        elif expected == "integer" or schema.get("format") == "int32":
            if value != int(value):
                problems.append(f"{where}: not an integer")
            elif schema.get("format") == "int32" and not _INT32[0] <= value <= _INT32[1]:
                problems.append(f"{where}: outside the int32 range")
