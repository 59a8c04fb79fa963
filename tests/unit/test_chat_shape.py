"""A chat request's shape checks (handlers.chat.shape_problem), by the types orjson reads."""

from __future__ import annotations

import orjson

from handlers.chat import shape_problem


def _problem(fields: str) -> str | None:
    return shape_problem(orjson.loads('{"messages": [{"role": "user", "content": "hi"}]' + fields + "}"))


def test_the_typed_fields_take_their_types() -> None:
    assert _problem(', "stream": true, "max_tokens": 5, "temperature": 0.5, "top_p": 1, "n": 1') is None


def test_an_integer_field_refuses_a_bool_and_a_float() -> None:
    assert _problem(', "max_tokens": true') == "'max_tokens' must be an integer"
    assert _problem(', "n": 1.5') == "'n' must be an integer"
    assert _problem(', "stream": 1') == "'stream' must be a boolean"


def test_a_number_field_takes_a_bool_as_before() -> None:
    """isinstance(True, (int, float)) held: a bool temperature was never refused here."""
    assert _problem(', "temperature": true') is None
    assert _problem(', "top_p": "1"') == "'top_p' must be a number"


def test_the_first_wrong_field_in_order_is_named() -> None:
    assert _problem(', "n": "x", "stream": "y"') == "'stream' must be a boolean"


def test_messages_must_be_objects() -> None:
    assert _problem(', "stream": false') is None
    assert shape_problem({"messages": [{}, 1]}) == "every entry of 'messages' must be an object"
    assert shape_problem({"messages": []}) == "'messages' must be a non-empty list"
