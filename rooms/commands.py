"""The one schema for incoming commands, shared by HTTP and WebSocket."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from rooms.results import Result, invalid
from rooms.state import RATE_MAX, RATE_MIN, Command, InvalidCommand

MAX_BODY_BYTES = 16 * 1024
MAX_URL_LENGTH = 2048

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
ClientId = Annotated[str, Field(min_length=1, max_length=64)]


class _Base(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    client_id: ClientId
    client_ms: FiniteFloat


class _Positioned(_Base):
    position: Annotated[FiniteFloat, Field(ge=0)]


class _Rate(_Base):
    rate: Annotated[FiniteFloat, Field(ge=RATE_MIN, le=RATE_MAX)]


class _Media(_Base):
    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]


class _Queued(BaseModel):
    """Queue commands apply in arrival order, so ``client_ms`` is optional (checked when given)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    client_id: ClientId
    client_ms: FiniteFloat | None = None


class _Enqueue(_Queued):
    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]


class _Dequeue(_Queued):
    item: int


class _Move(_Queued):
    item: int
    to: int


SCHEMAS: dict[str, type[BaseModel]] = {
    "play": _Positioned,
    "pause": _Positioned,
    "seek": _Positioned,
    "rate": _Rate,
    "media": _Media,
    "enqueue": _Enqueue,
    "dequeue": _Dequeue,
    "move": _Move,
    "next": _Queued,
}
CommandType = Literal["play", "pause", "seek", "rate", "media", "enqueue", "dequeue", "move", "next"]


def parse_json(raw: bytes | str) -> Any:
    """Decode a request body; NaN and Infinity survive so the schema can name their field."""
    if isinstance(raw, bytes | bytearray) and len(raw) > MAX_BODY_BYTES:
        raise InvalidCommand(f"body is larger than {MAX_BODY_BYTES} bytes", None)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCommand(f"malformed JSON: {exc}", "body") from None
    except RecursionError:  # "[" * 5000: nesting deeper than the interpreter's stack
        raise InvalidCommand("malformed JSON: nested too deeply", "body") from None
    if (field := _field_with_nul(data)) is not None:
        # PostgreSQL cannot store NUL in text; no field of any body needs one.
        raise InvalidCommand(f"{field}: must not contain NUL characters", field)
    return data


def _field_with_nul(data: Any) -> str | None:
    """The top-level field whose key or value (at any depth) holds a NUL ("body" if not in a field)."""
    top = data.items() if isinstance(data, dict) else [("body", data)]
    stack: list[tuple[str, Any]] = [(str(key), value) for key, value in top]
    while stack:
        field, value = stack.pop()
        if "\x00" in field:
            return "body"
        if isinstance(value, str) and "\x00" in value:
            return field
        if isinstance(value, dict):
            stack.extend((field, item) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            stack.extend((field, item) for item in value)
    return None


def command_from_data(data: Any) -> Command:
    """Validate a decoded command body, or raise InvalidCommand naming the field."""
    require_object(data)
    if "type" not in data:
        raise InvalidCommand("type is required", "type")
    schema = SCHEMAS.get(data["type"]) if isinstance(data["type"], str) else None
    if schema is None:
        raise InvalidCommand(f"unknown type; expected one of {', '.join(SCHEMAS)}", "type")
    valid = validated(schema, data)
    client_ms = getattr(valid, "client_ms", None)
    return Command(type=data["type"], client_id=getattr(valid, "client_id", None),
                   client_ms=0.0 if client_ms is None else float(client_ms),
                   position=getattr(valid, "position", None), rate=getattr(valid, "rate", None),
                   url=getattr(valid, "url", None), item=getattr(valid, "item", None), to=getattr(valid, "to", None))


def _message(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return "field required"
    if error["type"] == "finite_number":
        return "must be a finite number"
    return str(error["msg"]).lower()


def require_object(data: Any) -> dict[str, Any]:
    """Every body and message is a JSON object; anything else is a 400 naming ``body``."""
    if not isinstance(data, dict):
        raise InvalidCommand("the body must be a JSON object", "body")
    return data


def validated(schema: type[Schema], data: Any) -> Schema:
    """``data`` (a decoded body) checked by pydantic ``schema``, or InvalidCommand naming the first bad field."""
    try:
        return schema.model_validate(require_object(data))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidCommand(f"{field}: {_message(first)}", field) from None


def validated_or_invalid(schema: type[Schema], data: Any) -> Schema | Result:
    """``validated``, with a bad body as the ``invalid`` Result every service answers it with."""
    try:
        return validated(schema, data)
    except InvalidCommand as exc:
        return invalid(exc.error, exc.field)


Schema = TypeVar("Schema", bound=BaseModel)
