"""Custom field values: validating what a client sends and merging it into an entity.

Wire format (CONFIRMED): `custom_fields_values: [{"field_id": 1, "values": [{"value": ..}]}]`,
select values may come as `{"enum_id": ..}`; a field may also be addressed by `field_code`
(e.g. PHONE). `"values": null` clears a field (UNCONFIRMED but widely used).
Date fields hold unix timestamps (UNCONFIRMED: the v4 docs also show "2020-05-08"-style
strings; we accept both on input and always answer with an int).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from .model import CustomField
from .problems import INVALID_TYPE, NOT_SUPPORTED_CHOICE, Problems

TEXT_TYPES = {"text", "textarea", "url", "streetaddress", "numeric", "price", "tracking_data"}
DATE_TYPES = {"date", "date_time", "birthday"}
ENUM_TYPES = {"select", "radiobutton", "multiselect"}


def digits(text: str) -> str:
    return "".join(ch for ch in str(text) if ch.isdigit())


def phone_key(text: str) -> str:
    """amoCRM matches phones by their last 10 digits (+7 916 …, 8-916-…, 916… are one number)."""
    return digits(text)[-10:]


def to_timestamp(value, tz: str) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(tz))
        return int(moment.timestamp())
    return None


def parse(defs: dict[int, CustomField], raw, request_id: str, problems: Problems, tz: str,
          prefix: str = "custom_fields_values") -> list[dict]:
    """Validate a custom_fields_values list; returns [{"field_id", "values": list | None}]."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add(request_id, prefix, INVALID_TYPE, type="array")
        return []
    by_code = {f.code: f for f in defs.values() if f.code}
    updates = []
    for i, item in enumerate(raw):
        path = f"{prefix}.{i}"
        if not isinstance(item, dict):
            problems.add(request_id, path, INVALID_TYPE, type="object")
            continue
        fdef = None
        if "field_id" in item:
            fdef = defs.get(item["field_id"]) if isinstance(item["field_id"], int) else None
            if fdef is None:
                problems.add(request_id, f"{path}.field_id", NOT_SUPPORTED_CHOICE)
                continue
        elif "field_code" in item:
            fdef = by_code.get(item["field_code"]) if isinstance(item["field_code"], str) else None
            if fdef is None:
                problems.add(request_id, f"{path}.field_code", NOT_SUPPORTED_CHOICE)
                continue
        else:
            problems.add(request_id, f"{path}.field_id", NOT_SUPPORTED_CHOICE)
            continue
        values = item.get("values")
        if values is None or values == []:
            updates.append({"field_id": fdef.id, "values": None})
            continue
        if not isinstance(values, list):
            problems.add(request_id, f"{path}.values", INVALID_TYPE, type="array")
            continue
        clean = []
        for j, v in enumerate(values):
            one = _value(fdef, v, f"{path}.values.{j}", request_id, problems, tz)
            if one is not None:
                clean.append(one)
        updates.append({"field_id": fdef.id, "values": clean})
    return updates


def _value(fdef: CustomField, v, path: str, request_id: str, problems: Problems, tz: str) -> dict | None:
    if not isinstance(v, dict):
        problems.add(request_id, path, INVALID_TYPE, type="object")
        return None
    if fdef.type in DATE_TYPES:
        ts = to_timestamp(v.get("value"), tz)
        if ts is None:
            problems.add(request_id, f"{path}.value", INVALID_TYPE, type="int")
            return None
        return {"value": ts}
    if fdef.type in ENUM_TYPES:
        enum = None
        if "enum_id" in v:
            enum = fdef.enum_by_id(v["enum_id"])
            where = "enum_id"
        else:
            enum = fdef.enum_by_value(v.get("value"))
            where = "value"
        if enum is None:
            problems.add(request_id, f"{path}.{where}", NOT_SUPPORTED_CHOICE)
            return None
        return {"value": enum["value"], "enum_id": enum["id"]}
    if fdef.type == "checkbox":
        return {"value": bool(v.get("value"))}
    value = v.get("value")
    if value is None or isinstance(value, (dict, list)):
        problems.add(request_id, f"{path}.value", INVALID_TYPE, type="string")
        return None
    one = {"value": str(value)}
    if fdef.type == "multitext":
        enum = None
        if "enum_id" in v:
            enum = fdef.enum_by_id(v["enum_id"])
        elif "enum_code" in v:
            enum = fdef.enum_by_value(v["enum_code"])
        elif fdef.enums:
            enum = fdef.enums[0]
        if enum is None:
            problems.add(request_id, f"{path}.enum_code", NOT_SUPPORTED_CHOICE)
            return None
        one.update(enum_id=enum["id"], enum_code=enum["value"])
    return one


def merge(current: list[dict], updates: list[dict]) -> list[dict]:
    """Fields named in `updates` are replaced (or removed when values is None); others stay."""
    result = [dict(f, values=list(f["values"])) for f in current]
    for up in updates:
        index = next((k for k, f in enumerate(result) if f["field_id"] == up["field_id"]), None)
        if up["values"] is None:
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append({"field_id": up["field_id"], "values": up["values"]})
        else:
            result[index] = {"field_id": up["field_id"], "values": up["values"]}
    return result


def first_value(custom_fields: list[dict], field_id: int):
    for f in custom_fields:
        if f["field_id"] == field_id and f["values"]:
            return f["values"][0].get("value")
    return None


def phones(custom_fields: list[dict], phone_field_ids: set[int]) -> list[str]:
    return [str(v.get("value")) for f in custom_fields if f["field_id"] in phone_field_ids for v in f["values"]]
