"""Redacting request documents in place, in the client's wire format, before any upstream sees them.

Chat requests: message text, content parts, tool-call arguments and tool results, in
OpenAI chat and in Anthropic messages. System prompts and blocks marked `cache_control`
are left alone unless the policy says otherwise: rewriting them would change the
prefix the provider's prompt cache keys on. Anthropic thinking blocks are signed and
are never rewritten (a changed one is refused by the provider).

Other JSON bodies (forward routes that opt in): every string value, except the
`model` and identifiers (`id`, `*_id`), which name things rather than carry content.
"""

from __future__ import annotations

from typing import Any

from redaction.policy import Policy

_SYSTEM_ROLES = frozenset({"system", "developer"})


def redact_chat(document: dict[str, Any], client_format: str, policy: Policy, found: list[str]) -> None:
    """Redact a chat request of `client_format` (openai or anthropic) in place."""
    messages = document.get("messages")
    if client_format == "anthropic":
        if policy.system and "system" in document:
            document["system"] = _content(document["system"], policy, found)
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict) and "content" in message:
                    message["content"] = _content(message["content"], policy, found)
        return
    if not isinstance(messages, list):
        return
    for message in messages:
        if not isinstance(message, dict) or (message.get("role") in _SYSTEM_ROLES and not policy.system):
            continue
        if "cache_control" in message and not policy.cache_marked:
            continue
        if "content" in message:
            message["content"] = _content(message["content"], policy, found)
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                function["arguments"] = policy.scanner.redact(function["arguments"], found)
        legacy = message.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
            legacy["arguments"] = policy.scanner.redact(legacy["arguments"], found)


def _content(content: Any, policy: Policy, found: list[str]) -> Any:
    """A message's content (a string, or a list of blocks in either format), redacted."""
    if isinstance(content, str):
        return policy.scanner.redact(content, found)
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                _block(block, policy, found)
    return content


def _block(block: dict[str, Any], policy: Policy, found: list[str]) -> None:
    if "cache_control" in block and not policy.cache_marked:
        return
    kind = block.get("type")
    if kind in ("text", "input_text") and isinstance(block.get("text"), str):
        block["text"] = policy.scanner.redact(block["text"], found)
    elif kind == "tool_use" and "input" in block:
        block["input"] = redact_strings(block["input"], policy, found)
    elif kind == "tool_result" and "content" in block:
        block["content"] = _content(block["content"], policy, found)


_NAMES = frozenset({"model", "id", "role", "type", "object"})
_PAYLOADS = frozenset({"embedding", "b64_json"})  # base64 data (a vector, an image): never text


def redact_strings(value: Any, policy: Policy, found: list[str], *, skip_names: bool = False) -> Any:
    """`value` with every string in it redacted (lists and objects walked without recursion,
    so a deeply nested document cannot exhaust the stack); `skip_names`: leave the values
    of keys that name things (`model`, `id`, `*_id`, `role`, `type`) or hold base64 data
    (`embedding`, `b64_json`) as they are."""
    if isinstance(value, str):
        return policy.scanner.redact(value, found)
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, item in items:
            if isinstance(item, str):
                if skip_names and isinstance(key, str) and (
                        key in _NAMES or key in _PAYLOADS or key.endswith("_id")):
                    continue
                node[key] = policy.scanner.redact(item, found)
            elif isinstance(item, dict | list):
                stack.append(item)
    return value
