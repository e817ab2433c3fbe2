"""Tool schemas from type hints and docstrings (pydantic), on a table of signatures."""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal, Optional

import pydantic
import pytest

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.tools import Tool, ToolError, ToolRegistry, tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    street: str
    zip_code: int


@dataclasses.dataclass
class Slot:
    day: str
    hour: int


def f_str(city: str) -> str:
    """Weather for a city.

    Args:
        city: the city's name
    """
    return city


def f_defaults(count: int, ratio: float = 0.5, loud: bool = False) -> str:
    """Numbers with defaults."""
    return ""


def f_literal_enum(size: Literal["s", "m", "l"], color: Color) -> str:
    """Choices.

    :param size: the size
    :param color: the colour
    """
    return ""


def f_optional_list(tags: list[str], note: Optional[str] = None, ids: list[int] | None = None) -> str:
    """Lists and optionals."""
    return ""


def f_nested(address: Address, slot: Slot) -> str:
    """Nested models."""
    return ""


def f_context(order_id: str, ctx: CallContext) -> str:
    """Uses the call's context."""
    return ""


def f_none() -> str:
    """No parameters."""
    return "ok"


CASES = [
    (f_str, {"city": {"type": "string", "description": "the city's name"}}, ["city"]),
    (f_defaults, {"count": {"type": "integer"}, "ratio": {"type": "number", "default": 0.5},
                  "loud": {"type": "boolean", "default": False}}, ["count"]),
    (f_literal_enum, {"size": {"enum": ["s", "m", "l"], "description": "the size"}}, ["size", "color"]),
    (f_optional_list, {"tags": {"type": "array", "items": {"type": "string"}}}, ["tags"]),
    (f_nested, {}, ["address", "slot"]),
    (f_context, {"order_id": {"type": "string"}}, ["order_id"]),
    (f_none, {}, []),
]


@pytest.mark.parametrize("fn, expected, required", CASES, ids=[c[0].__name__ for c in CASES])
def test_schema_table(fn, expected: dict, required: list[str]) -> None:  # noqa: ANN001
    t = Tool(fn)
    schema = t.schema()
    assert schema["type"] == "function" and schema["function"]["name"] == fn.__name__
    assert schema["function"]["description"] == fn.__doc__.strip().splitlines()[0]
    params = schema["function"]["parameters"]
    assert params["type"] == "object"
    assert sorted(params.get("required", [])) == sorted(required)
    for name, fields in expected.items():
        for key, value in fields.items():
            assert params["properties"][name][key] == value, (name, key)
    assert "ctx" not in params["properties"]  # the context is injected, never asked of the model


def test_nested_and_enum_types_are_described() -> None:
    params = Tool(f_nested).parameters
    defs = params["$defs"]
    assert defs["Address"]["properties"]["zip_code"]["type"] == "integer"
    assert defs["Slot"]["required"] == ["day", "hour"]
    assert Tool(f_literal_enum).parameters["$defs"]["Color"]["enum"] == ["red", "blue"]


def test_arguments_are_validated_before_the_function_runs() -> None:
    t = Tool(f_nested)
    args = t.validate('{"address": {"street": "Main", "zip_code": "123"}, "slot": {"day": "mon", "hour": 9}}')
    assert args["address"] == Address(street="Main", zip_code=123) and args["slot"] == Slot("mon", 9)
    for bad in ('{"address": {"street": "Main"}}', "not json", '{"address": 3, "slot": {}}'):
        with pytest.raises(ToolError, match="invalid arguments for f_nested"):
            t.validate(bad)
    assert Tool(f_none).validate("") == {}


def test_decorator_policy_and_confirmation() -> None:
    @tool(timeout_s=2.0, filler="One moment.", interruptible=False, confirm=True)
    def cancel_order(order_id: str) -> str:
        """Cancel an order."""
        return "cancelled"

    assert cancel_order.policy.timeout_s == 2.0 and not cancel_order.policy.interruptible
    assert cancel_order.parameters["properties"]["confirmed"]["type"] == "boolean"


def test_bad_tools_fail_at_definition() -> None:
    def undocumented(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="needs a docstring"):
        Tool(undocumented)
    with pytest.raises(ValueError, match="two tools are named"):
        ToolRegistry([f_str, f_str])
    with pytest.raises(ValueError, match="timeout_s"):
        tool(timeout_s=0)(f_str)


def test_an_optional_call_context_is_injected_not_described() -> None:
    def where_am_i(ctx: CallContext | None = None) -> str:
        """Say which number is calling."""
        return ctx.caller if ctx else "nobody"

    t = Tool(where_am_i)
    assert t.context_param == "ctx" and t.parameters["properties"] == {}
