"""Chat request bodies between OpenAI chat completions and Anthropic Messages.

Only fields with a counterpart are carried; anything else is dropped rather than
forwarded to a provider that would reject it. A carried field of the wrong type, or a
request that cannot be expressed in the other format, raises ValueError with a message
fit for a 400 answer: nothing the client asked for is dropped silently.

Structured output: OpenAI's `response_format` json_schema and Anthropic's
`output_config.format` map onto each other. OpenAI's json_object (JSON without a
schema) has no Anthropic counterpart and is refused.

Extended thinking in a tool loop: Anthropic refuses a request with thinking enabled
when the final assistant turn calls tools without opening with the signed thinking
block it issued. OpenAI clients get those blocks as the answer message's
`thinking_blocks` (streamed too, as indexed deltas SDK accumulators gather) and may
send them back on that assistant message; they are restored ahead of its tool calls.
When that final turn lacks them (a client that keeps only the standard fields),
thinking is left off for that one request rather than the request being refused.
"""

from __future__ import annotations

from typing import Any

from converters.chat_mapping import anthropic_tool_id, parse_arguments
from converters.encoding import encode

# Anthropic requires max_tokens; OpenAI clients often leave it out.
DEFAULT_MAX_TOKENS = 4096
# Anthropic's smallest thinking budget.
MIN_THINKING_BUDGET = 1024
# reasoning_effort -> thinking budget_tokens, and back by the thresholds below.
EFFORT_BUDGETS: dict[str, int] = {
    "minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 32768,
}
_BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"))
# Anthropic output_config.effort -> the levels OpenAI-compatible providers all know.
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_THINKING_KINDS = ("thinking", "redacted_thinking")
# The name OpenAI requires for a json_schema response format; Anthropic's has none.
_SCHEMA_NAME = "response"
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# A turn of one plain text block is sent as a string.
_TEXT_BLOCK_KEYS = frozenset({"type", "text"})
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
# OpenAI tool messages have no error flag: an Anthropic tool_result with is_error becomes
# a tool message whose text starts with this, and such a message becomes is_error again.
TOOL_ERROR_PREFIX = "Error: "


def openai_to_anthropic_request(doc: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request for an OpenAI chat completions request."""
    messages = doc.get("messages")
    if not isinstance(messages, list):
        raise ValueError("'messages' must be a list")
    # Most requests give few of the optional fields: each is read only when given (a null
    # one reads as absent either way), in the same order, so errors come as they would. (A
    # key looked up in `doc` costs what one looked up in a set of the given ones would, and
    # no such set is made.)
    if "n" in doc and doc["n"] not in (None, 1):
        raise ValueError("'n' other than 1 cannot be served by an Anthropic provider")
    system, turns, carries_thinking = _anthropic_turns(messages)
    out: dict[str, Any] = {}
    if "model" in doc:
        out["model"] = doc["model"]
    if system:
        out["system"] = system
    out["messages"] = turns
    limit = doc.get("max_completion_tokens")
    if limit is None:
        limit = doc.get("max_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError("'max_completion_tokens' / 'max_tokens' must be a positive integer")
    if "stop" in doc:
        stop = _stop_sequences(doc["stop"])
        if stop:
            out["stop_sequences"] = stop
    if "user" in doc or "safety_identifier" in doc:
        user = _field(doc, "user", str, "a string") or _field(doc, "safety_identifier", str, "a string")
        if user:
            out["metadata"] = {"user_id": user}
    stream = doc.get("stream")
    if stream is True:
        out["stream"] = True
    elif stream is not None and stream is not False:
        _field(doc, "stream", bool, "a boolean")  # raises: not a boolean
    if "stream_options" in doc:
        options = _field(doc, "stream_options", dict, "an object")  # read by the stream converter
        if options:
            _field(options, "include_usage", bool, "a boolean", "stream_options")
    forced = False
    if "tools" in doc or "tool_choice" in doc or "parallel_tool_calls" in doc:
        forced = _carry_tools(doc, out)
    if "response_format" in doc:
        output_format = _anthropic_output_format(doc["response_format"])
        if output_format:
            out["output_config"] = {"format": output_format}
    # Anthropic refuses thinking with a forced tool choice (thinking gives way), and
    # temperature or top_p with thinking (they give way).
    budget = _thinking_budget(doc["reasoning_effort"]) if "reasoning_effort" in doc else 0
    if forced or (budget and not _thinking_fits(turns)):
        budget = 0
    if budget and limit is None:
        limit = DEFAULT_MAX_TOKENS + budget  # the default answer room stays on top of the thinking
    elif budget:
        budget = min(budget, limit - 1)  # Anthropic wants budget_tokens < max_tokens
        budget = budget if budget >= MIN_THINKING_BUDGET else 0
    out["max_tokens"] = DEFAULT_MAX_TOKENS if limit is None else limit
    temperature = _number(doc, "temperature") if "temperature" in doc else None
    top_p = _number(doc, "top_p") if "top_p" in doc else None
    if budget:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    elif temperature is not None:
        # Anthropic samples with temperature in [0, 1], and recent models take only one
        # of temperature and top_p: temperature wins.
        out["temperature"] = min(temperature, 1.0)
    elif top_p is not None:
        out["top_p"] = top_p
    if carries_thinking and not budget:
        _drop_thinking(turns)  # thinking blocks without thinking enabled are refused
    return out


def anthropic_to_openai_request(doc: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completions request for an Anthropic Messages request."""
    messages = doc.get("messages")
    if not isinstance(messages, list):
        raise ValueError("'messages' must be a list")
    converted: list[dict[str, Any]] = []
    system = _anthropic_text(doc.get("system"), "system")
    if system:
        converted.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where} must be an object")
        role = message.get("role")
        if role == "user":
            converted.extend(_openai_user_messages(message.get("content"), where))
        elif role == "assistant":
            converted.append(_openai_assistant_message(message.get("content"), where))
        else:
            raise ValueError(f"{where}: role {role!r} is not 'user' or 'assistant'")

    out: dict[str, Any] = {}
    if "model" in doc:
        out["model"] = doc["model"]
    out["messages"] = converted
    limit = doc.get("max_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError("'max_tokens' must be a positive integer")
        out["max_completion_tokens"] = limit  # OpenAI's current models refuse the older max_tokens
    for key in ("temperature", "top_p"):
        value = _number(doc, key)
        if value is not None:
            out[key] = value
    stop = _stop_sequences(doc.get("stop_sequences"))
    if stop:
        out["stop"] = stop
    metadata = _field(doc, "metadata", dict, "an object")
    user = _field(metadata, "user_id", str, "a string", "metadata") if metadata else None
    if user:
        out["user"] = user
    if _field(doc, "stream", bool, "a boolean"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # so usage reaches the converted stream
    tools = _field(doc, "tools", list, "a list")
    choice = doc.get("tool_choice")
    openai_choice = _openai_tool_choice(choice) if choice is not None else None
    if tools:
        out["tools"] = [_openai_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
        if openai_choice is not None:
            out["tool_choice"] = openai_choice
            serial = _field(choice, "disable_parallel_tool_use", bool, "a boolean", "tool_choice")
            if serial and openai_choice != "none":
                out["parallel_tool_calls"] = False
    output_config = _field(doc, "output_config", dict, "an object") or {}
    effort = _reasoning_effort(_field(doc, "thinking", dict, "an object"), output_config)
    if effort:
        out["reasoning_effort"] = effort
    # output_format: the structured-outputs beta's name for output_config.format.
    output_format = output_config.get("format")
    if output_format is None:
        output_format = doc.get("output_format")
    response_format = _openai_response_format(output_format)
    if response_format:
        out["response_format"] = response_format
    return out


# --- OpenAI -> Anthropic pieces ---------------------------------------------------------------


def _carry_tools(doc: dict[str, Any], out: dict[str, Any]) -> bool:
    """Tools and the tool choice into `out`; whether the choice forces a tool call."""
    tools = _field(doc, "tools", list, "a list") if "tools" in doc else None
    choice = _anthropic_tool_choice(doc["tool_choice"]) if "tool_choice" in doc else None
    parallel = None
    if "parallel_tool_calls" in doc:
        parallel = _field(doc, "parallel_tool_calls", bool, "a boolean")
    if not tools:
        return False
    out["tools"] = [_anthropic_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    if parallel is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if not choice:
        return False
    out["tool_choice"] = choice
    return choice["type"] in ("any", "tool")


def _anthropic_turns(messages: list[object]) -> tuple[str, list[dict[str, Any]], bool]:
    """(system prompt, alternating turns, whether any turn carries thinking blocks).

    System and developer messages, wherever they stand, join the system prompt; tool
    results become user turns; neighbours with the same role merge, as Anthropic wants
    user and assistant to alternate. A user turn of one text is sent as a string: the
    usual one, a user message whose content is a string, is made so at once (no block
    to make and look at again, no `where` to format)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    carries_thinking = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"messages[{i}] must be an object")
        role = message.get("role")
        if role == "user":
            content = message.get("content")
            if type(content) is str:
                if not content:
                    continue
                if turns and turns[-1]["role"] == "user":
                    _blocks(turns[-1]).append({"type": "text", "text": content})
                else:
                    turns.append({"role": "user", "content": content})
                continue
            blocks = _anthropic_user_blocks(content, f"messages[{i}]")
        elif role in ("system", "developer"):
            text = _openai_text(message.get("content"), f"messages[{i}]")
            if text:
                system.append(text)
            continue
        elif role == "assistant":
            blocks = _anthropic_assistant_blocks(message, f"messages[{i}]")
            carries_thinking = carries_thinking or (bool(blocks) and blocks[0]["type"] in _THINKING_KINDS)
        elif role == "tool":
            role, blocks = "user", [_anthropic_tool_result(message, f"messages[{i}]")]
        else:
            raise ValueError(
                f"messages[{i}]: role {_shown(role)} cannot be converted for an Anthropic provider")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            _blocks(turns[-1]).extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise ValueError("'messages' holds no user or assistant message with content")
    for turn in turns:
        blocks = turn["content"]
        if type(blocks) is list and len(blocks) == 1 and blocks[0].keys() == _TEXT_BLOCK_KEYS:
            turn["content"] = blocks[0]["text"]
    return "\n\n".join(system), turns, carries_thinking


def _blocks(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """A turn's content blocks, a turn sent as a string made a list of one text block first."""
    content = turn["content"]
    if type(content) is str:
        content = turn["content"] = [{"type": "text", "text": content}]
    return content


def _thinking_fits(turns: list[dict[str, Any]]) -> bool:
    """Whether Anthropic would take thinking with these turns: the final assistant turn,
    when it calls tools, must open with its thinking (or redacted_thinking) block."""
    for turn in reversed(turns):
        if turn["role"] == "assistant":
            blocks = turn["content"]
            if isinstance(blocks, str) or all(block["type"] != "tool_use" for block in blocks):
                return True
            return blocks[0]["type"] in _THINKING_KINDS
    return True


def _drop_thinking(turns: list[dict[str, Any]]) -> None:
    for turn in turns:
        if turn["role"] == "assistant" and isinstance(turn["content"], list):
            turn["content"] = [block for block in turn["content"] if block["type"] not in _THINKING_KINDS]


def _openai_text(content: object, where: str) -> str:
    """Text of a system/developer/tool message: a string or a list of text parts."""
    return _joined_text(content, f"{where}.content", "text part", "")


def _anthropic_user_blocks(content: object, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of parts")
    blocks = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_anthropic_image(part.get("image_url"), at))
        elif kind == "file":
            blocks.append(_anthropic_document(part.get("file"), at))
        else:
            raise ValueError(f"{at}: part type {_shown(kind)} cannot be converted for an Anthropic provider")
    return blocks


def _anthropic_image(image: object, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise ValueError(f"{where}: image_url.url must be a string")
    if url.startswith("data:"):
        media_type, data = _data_url(url, where)
        if media_type not in _IMAGE_TYPES:
            known = ", ".join(sorted(_IMAGE_TYPES))
            raise ValueError(f"{where}: image type {media_type!r} is not one of {known}")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise ValueError(f"{where}: image_url.url must be an http(s) URL or a base64 data: URL")


def _anthropic_document(file: object, where: str) -> dict[str, Any]:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise ValueError(f"{where}: only files given inline as a base64 data: URL can be converted")
    media_type, data = _data_url(data_url, where)
    if media_type != "application/pdf":
        raise ValueError(f"{where}: only PDF files can be converted, not {media_type!r}")
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _data_url(url: str, where: str) -> tuple[str, str]:
    """(media type, base64 payload) of a data: URL."""
    header, comma, data = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise ValueError(f"{where}: data: URLs must be base64-encoded")
    return header[5:].split(";", 1)[0].lower(), data


def _anthropic_assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Signed thinking (from `thinking_blocks`), text, then tool_use blocks. Bare
    reasoning_content is dropped: Anthropic accepts thinking only with the signature it
    issued. A turn with nothing but thinking is dropped whole."""
    thinking = _signed_thinking(message.get("thinking_blocks"), f"{where}.thinking_blocks")
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            text = part.get(kind) if kind in ("text", "refusal") else None
            if not isinstance(text, str):
                raise ValueError(f"{where}.content[{j}] must be a text or refusal part")
            if text:
                blocks.append({"type": "text", "text": text})
    elif content is not None:
        raise ValueError(f"{where}.content must be a string, a list of parts or null")
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise ValueError(f"{where}.tool_calls must be a list")
    for j, call in enumerate(calls or ()):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise ValueError(f"{at}: only function tool calls can be converted")
        if not isinstance(call.get("id"), str) or not isinstance(function.get("name"), str):
            raise ValueError(f"{at} needs a string 'id' and 'function.name'")
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str | dict):
            raise ValueError(f"{at}.function.arguments must be a JSON string")
        blocks.append({
            "type": "tool_use",
            "id": anthropic_tool_id(call["id"]),
            "name": function["name"],
            "input": parse_arguments(arguments),
        })
    return [*thinking, *blocks] if blocks else []


def _signed_thinking(value: object, where: str) -> list[dict[str, Any]]:
    """The thinking blocks an OpenAI client sends back as an answer gave them (signed)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list")
    blocks = []
    for j, block in enumerate(value):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking" and all(isinstance(block.get(key), str) for key in ("thinking", "signature")):
            blocks.append({"type": "thinking", "thinking": block["thinking"],
                           "signature": block["signature"]})
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
        else:
            raise ValueError(f"{where}[{j}] must be a signed thinking block or a redacted_thinking block")
    return blocks


def _anthropic_tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    """A tool_result block; the error prefix anthropic_to_openai_request writes maps back to is_error."""
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise ValueError(f"{where}: a tool message needs a string 'tool_call_id'")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": anthropic_tool_id(call_id)}
    text = _openai_text(message.get("content"), where)
    if text.startswith(TOOL_ERROR_PREFIX):
        block["is_error"] = True
        text = text[len(TOOL_ERROR_PREFIX):]
    if text:
        block["content"] = text
    return block


def _anthropic_tool(tool: object, where: str) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type", "function") != "function":
        raise ValueError(f"{where}: only function tools can be converted for an Anthropic provider")
    if not isinstance(function.get("name"), str):
        raise ValueError(f"{where}: function.name must be a string")
    out: dict[str, Any] = {"name": function["name"]}
    description = _field(function, "description", str, "a string", f"{where}.function")
    if description is not None:
        out["description"] = description
    parameters = _field(function, "parameters", dict, "an object", f"{where}.function")
    out["input_schema"] = _EMPTY_SCHEMA if parameters is None else parameters
    return out


def _anthropic_tool_choice(choice: object) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    named = isinstance(choice, dict) and choice.get("type") == "function"
    function = choice.get("function") if named else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise ValueError("'tool_choice' must be auto, none, required or a named function")


def _thinking_budget(effort: object) -> int:
    if effort is None or effort == "none":
        return 0
    if not isinstance(effort, str) or effort not in EFFORT_BUDGETS:
        raise ValueError(f"'reasoning_effort' must be one of none, {', '.join(EFFORT_BUDGETS)}")
    return EFFORT_BUDGETS[effort]


def _anthropic_output_format(response_format: object) -> dict[str, Any] | None:
    """Anthropic's output_config.format for OpenAI's response_format (None: free text)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        raise ValueError("'response_format' json_object (JSON without a schema) cannot be served by an "
                         "Anthropic provider: give a json_schema")
    if kind == "json_schema":
        spec = _field(response_format, "json_schema", dict, "an object", "response_format")
        schema = _field(spec or {}, "schema", dict, "an object", "response_format.json_schema")
        if schema is None:
            raise ValueError("'response_format' json_schema needs a 'schema' for an Anthropic provider")
        return {"type": "json_schema", "schema": schema}
    raise ValueError("'response_format' must be an object of type text, json_object or json_schema")


# --- Anthropic -> OpenAI pieces ---------------------------------------------------------------


def _anthropic_text(content: object, where: str) -> str:
    """Text of a system prompt given as a string or text blocks."""
    return _joined_text(content, where, "text block", "\n\n")


def _joined_text(content: object, where: str, kind: str, separator: str) -> str:
    """A string, or the texts of a list of `{"type": "text", "text": ...}` items joined."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise ValueError(f"{where} must be a string or a list of {kind}s")
    texts = []
    for j, item in enumerate(content):
        text = item.get("text") if isinstance(item, dict) and item.get("type") == "text" else None
        if not isinstance(text, str):
            raise ValueError(f"{where}[{j}] must be a {kind}")
        texts.append(text)
    return separator.join(texts)


def _openai_user_messages(content: object, where: str) -> list[dict[str, Any]]:
    """Tool results become tool messages, first; the rest stays one user message after them.
    Images inside tool results move to that user message: OpenAI tool messages hold text only."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of blocks")
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            results.append(_openai_tool_message(block, at, parts))
        else:
            parts.append(_openai_part(block, kind, at))
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        results.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return results


def _openai_part(block: dict[str, Any], kind: object, where: str) -> dict[str, Any]:
    if kind == "text" and isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    source = block.get("source") if isinstance(block, dict) else None
    if kind in ("image", "document") and isinstance(source, dict):
        if source.get("type") == "url" and isinstance(source.get("url"), str) and kind == "image":
            return {"type": "image_url", "image_url": {"url": source["url"]}}
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            media_type = source.get("media_type")
            if not isinstance(media_type, str):
                raise ValueError(f"{where}.source.media_type must be a string")
            url = f"data:{media_type};base64,{source['data']}"
            if kind == "image":
                return {"type": "image_url", "image_url": {"url": url}}
            title = block.get("title")
            name = title if isinstance(title, str) and title else "document.pdf"
            return {"type": "file", "file": {"file_data": url, "filename": name}}
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            return {"type": "text", "text": source["data"]}
    raise ValueError(f"{where}: block type {_shown(kind)} cannot be converted for an OpenAI provider")


def _openai_tool_message(block: dict[str, Any], where: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(block.get("tool_use_id"), str):
        raise ValueError(f"{where}: tool_result needs a string 'tool_use_id'")
    content = block.get("content")
    if content is None or isinstance(content, str):
        text = content or ""
    elif isinstance(content, list):
        texts = []
        for j, inner in enumerate(content):
            kind = inner.get("type") if isinstance(inner, dict) else None
            part = _openai_part(inner, kind, f"{where}.content[{j}]")
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                parts.append(part)
        text = "\n\n".join(texts)
    else:
        raise ValueError(f"{where}.content must be a string or a list of blocks")
    if _field(block, "is_error", bool, "a boolean", where):
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _openai_assistant_message(content: object, where: str) -> dict[str, Any]:
    """Text blocks join into content, thinking into reasoning_content (which reasoning
    providers such as DeepSeek want back); redacted thinking is opaque and dropped."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of blocks")
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use" and isinstance(block.get("id"), str) and isinstance(block.get("name"), str):
            at = f"{where}.content[{j}]"
            arguments = encode(_field(block, "input", dict, "an object", at) or {}, f"{at}.input").decode()
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": arguments}})
        else:
            raise ValueError(f"{where}.content[{j}]: block type {_shown(kind)} cannot be converted "
                             "for an OpenAI provider")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return message


def _openai_tool(tool: object, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise ValueError(f"{where}: server tool {_shown(kind)} cannot be served by an OpenAI provider")
    if not isinstance(tool.get("name"), str):
        raise ValueError(f"{where}: 'name' must be a string")
    function: dict[str, Any] = {"name": tool["name"]}
    description = _field(tool, "description", str, "a string", where)
    if description is not None:
        function["description"] = description
    schema = _field(tool, "input_schema", dict, "an object", where)
    function["parameters"] = _EMPTY_SCHEMA if schema is None else schema
    return {"type": "function", "function": function}


def _openai_tool_choice(choice: object) -> str | dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("auto", "none"):
        return kind
    if kind == "any":
        return "required"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise ValueError("'tool_choice' must be of type auto, any, none or tool (with a name)")


def _reasoning_effort(thinking: dict[str, Any] | None, output_config: dict[str, Any]) -> str | None:
    """OpenAI's reasoning_effort for Anthropic's thinking config and output_config.effort."""
    kind = thinking.get("type") if thinking is not None else None
    if thinking is not None and kind not in ("enabled", "adaptive", "disabled"):
        raise ValueError("'thinking.type' must be enabled, adaptive or disabled")
    effort = output_config.get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in _EFFORTS):
        raise ValueError(f"'output_config.effort' must be one of {', '.join(_EFFORTS)}")
    budget = thinking.get("budget_tokens") if kind == "enabled" else None
    if kind == "enabled" and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
        raise ValueError("'thinking.budget_tokens' must be a positive integer")
    if kind == "disabled":
        return None
    if effort is not None:
        return _EFFORTS[effort]
    if budget is None:
        return None
    return next((name for limit, name in _BUDGET_EFFORTS if budget < limit), "high")


def _openai_response_format(output_format: object) -> dict[str, Any] | None:
    """OpenAI's response_format for Anthropic's output_config.format (None: free text)."""
    if output_format is None:
        return None
    kind = output_format.get("type") if isinstance(output_format, dict) else None
    schema = output_format.get("schema") if kind == "json_schema" else None
    if not isinstance(schema, dict):
        raise ValueError("'output_config.format' must be of type json_schema, with a 'schema' object")
    # Anthropic's structured outputs always hold to the schema: strict is OpenAI's equivalent.
    return {"type": "json_schema", "json_schema": {"name": _SCHEMA_NAME, "schema": schema, "strict": True}}


# --- shared -----------------------------------------------------------------------------------


def _stop_sequences(stop: object) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ValueError("stop sequences must be a string or a list of strings")
    return [s for s in stop if s]


def _field(holder: dict[str, Any], key: str, kind: type, wording: str, where: str = "") -> Any:
    """holder[key], None when absent or null; ValueError when it is not of `kind`."""
    value = holder.get(key)
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{where}.{key} must be {wording}" if where else f"'{key}' must be {wording}")
    return value


def _shown(value: object) -> str:
    """A client value quoted in an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{key}' must be a number")
    return value
