"""Request validation as strict as OpenAI's Chat Completions: roles, tool-call/tool-message
pairing, arguments that must be JSON. What OpenAI answers with 400, this raises for."""

from __future__ import annotations

import json
import re
from typing import Any


class InvalidRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


_ROLES = {"system", "developer", "user", "assistant", "tool"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def validate_chat_request(body: Any) -> None:
    """Raise `InvalidRequest` for what OpenAI's Chat Completions would reject with 400."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("[] is too short - 'messages'", "messages")
    if "stream_options" in body and not body.get("stream"):
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    tools = body.get("tools")
    if tools is not None:
        _validate_tools(tools)

    pending: dict[str, int] = {}  # tool_call_id -> index of the assistant message awaiting it
    for i, message in enumerate(messages):
        where = f"messages.[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", where)
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequest(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'tool', and 'developer'.", f"{where}.role")
        if pending and role != "tool":
            raise InvalidRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}", f"{where}.role")
        content = message.get("content")
        if role in ("system", "developer", "user"):
            _require_content(content, where)
        elif role == "assistant":
            calls = message.get("tool_calls")
            if content is None and not calls:
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.content'.", f"{where}.content")
            if content is not None and not isinstance(content, (str, list)):
                raise InvalidRequest(f"Invalid type for '{where}.content'.", f"{where}.content")
            if calls is not None:
                if not isinstance(calls, list) or not calls:
                    raise InvalidRequest(
                        f"[] is too short - '{where}.tool_calls'", f"{where}.tool_calls")
                for j, call in enumerate(calls):
                    pending[_validate_tool_call(call, f"{where}.tool_calls.[{j}]", pending)] = i
        else:  # tool
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.tool_call_id'.",
                    f"{where}.tool_call_id")
            _require_content(content, where)
            if call_id not in pending:
                raise InvalidRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.", f"{where}.role")
            del pending[call_id]
    if pending:
        raise InvalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(pending)}", "messages")


def _require_content(content: Any, where: str) -> None:
    if content is None:
        raise InvalidRequest(f"Missing required parameter: '{where}.content'.", f"{where}.content")
    if not isinstance(content, (str, list)):
        raise InvalidRequest(f"Invalid type for '{where}.content'.", f"{where}.content")


def _validate_tool_call(call: Any, where: str, pending: dict[str, int]) -> str:
    if not isinstance(call, dict):
        raise InvalidRequest(f"{where} must be an object", where)
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"Missing required parameter: '{where}.id'.", f"{where}.id")
    if call_id in pending:
        raise InvalidRequest(f"Duplicate tool_call id '{call_id}'.", f"{where}.id")
    if call.get("type") != "function":
        raise InvalidRequest(f"Missing required parameter: '{where}.type'.", f"{where}.type")
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(
            f"Missing required parameter: '{where}.function.name'.", f"{where}.function")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        raise InvalidRequest(
            f"Invalid type for '{where}.function.arguments': expected a string.",
            f"{where}.function.arguments")
    try:
        json.loads(arguments)
    except ValueError:
        raise InvalidRequest(
            f"Invalid '{where}.function.arguments': not valid JSON.",
            f"{where}.function.arguments") from None
    return call_id


def _validate_tools(tools: Any) -> None:
    if not isinstance(tools, list) or not tools:
        raise InvalidRequest("[] is too short - 'tools'", "tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(f"Missing required parameter: '{where}.type'.", f"{where}.type")
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequest(
                f"Invalid '{where}.function.name': string does not match pattern.",
                f"{where}.function.name")
        params = function.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise InvalidRequest(
                f"Invalid type for '{where}.function.parameters'.", f"{where}.function.parameters")

