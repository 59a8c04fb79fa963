"""The answer's head, read from libcurl's header lines (upstream/response_head.py)."""

from __future__ import annotations

from upstream.headers import UPSTREAM_PRIVATE, relayable
from upstream.response_head import NO_HEADERS, Headers, _fields_line_by_line, final_head, read_head


def read(*lines: bytes) -> tuple[int, Headers | None, int]:
    """The final head's status and headers, and the line it completed on (1-based), read as an
    exchange reads libcurl's heads: split at blank lines, interim heads skipped, and nothing
    after the final head (trailers) read."""
    status, head, at, block = 0, None, 0, []
    for number, line in enumerate(lines, 1):
        if line not in (b"\r\n", b"\n"):
            block.append(line)
            continue
        found = read_head(block) if head is None else None
        block = []
        if found is not None:
            (status, head), at = found, number
    return status, head, at


def test_an_interim_head_is_skipped_and_the_final_one_read_once() -> None:
    status, head, at = read(
        b"HTTP/1.1 100 Continue\r\n", b"\r\n",
        b"HTTP/1.1 429 Too Many Requests\r\n", b"Retry-After: 7\r\n", b"content-type: application/json\r\n",
        b"\r\n",
        b"X-Trailer: late\r\n", b"\r\n",  # trailers after a chunked body: never part of the head
    )
    assert (status, at) == (429, 6)
    assert head is not None
    assert head.get("retry-after") == "7" and head["Content-Type"] == "application/json"
    assert "x-trailer" not in head and head.get("X-Trailer") is None


def test_fields_keep_their_order_and_repeats_and_folded_lines_join() -> None:
    _, head, _ = read(
        b"HTTP/2 200 \r\n", b"set-cookie: a=1\r\n", b"Link: <a>\r\n", b"link: <b>\r\n",
        b"X-Folded: one\r\n", b"\t two\r\n", b"Connection: x-hop\r\n", b"X-Hop: 1\r\n", b"\r\n",
    )
    assert head is not None
    assert list(head) == [("set-cookie", "a=1"), ("Link", "<a>"), ("link", "<b>"), ("X-Folded", "one two"),
                          ("Connection", "x-hop"), ("X-Hop", "1")]
    assert head.get_list("LINK") == ["<a>", "<b>"] and head.get("link") == "<a>,<b>"
    # relayed without cookies, hop-by-hop headers, or those the Connection header names
    assert list(relayable(head, UPSTREAM_PRIVATE)) == [("Link", "<a>"), ("link", "<b>"), ("X-Folded", "one two")]


def test_a_head_read_in_one_pass_has_the_fields_read_line_by_line() -> None:
    """The usual head is read with one regex over the block: odd lines come out as a line by
    line reading gives them (no colon: not a field; colons in values; a bare CR kept)."""
    lines = [b"Content-Type: text/event-stream\r\n", b"X-A:b\r\n", b"x-b :  c  \r\n", b"nocolon\r\n",
             b"X-Url: http://a:b/c\r\n", b"Bare: a\rb\r\n", b":empty\r\n", b"Latin: \xff\n"]
    read = read_head([b"HTTP/1.1 200 OK: fine\r\n", *lines])
    assert read is not None
    status, head = read
    assert status == 200
    assert list(head) == _fields_line_by_line(lines) == [
        ("Content-Type", "text/event-stream"), ("X-A", "b"), ("x-b", "c"), ("X-Url", "http://a:b/c"),
        ("Bare", "a\rb"), ("", "empty"), ("Latin", "\xff")]
    assert read_head([b"HTTP/1.1 103 Early Hints\r\n", b"Link: <a>\r\n"]) is None


def test_a_field_found_by_name_is_what_the_whole_head_read_gives() -> None:
    """A field is looked up in the head's text, not in a parsed index: every name, in any case,
    finds what the fields read one by one hold (spaces around names and values stripped,
    repeats joined, a name that is only part of another's not found)."""
    lines = [b"Content-Type: text/event-stream\r\n", b"X-A:b\r\n", b"x-b :  c  \r\n", b"nocolon\r\n",
             b"X-Url: http://a:b/c\r\n", b"Bare: a\rb\r\n", b"\x0bX-Lead: v\r\n", b"x-a: second\r\n",
             b"Retry-After-Ms: 9\r\n", b"Latin: \xff\xa0\n"]
    read = read_head([b"HTTP/1.1 200 OK\r\n", *lines])
    assert read is not None
    head = read[1]
    fields = _fields_line_by_line(lines)
    assert list(head) == fields
    for name in {name for name, _ in fields} | {"Retry-After", "Content", "nocolon", "X"}:
        for asked in (name, name.upper(), name.lower()):
            values = [value for field, value in fields if field.lower() == name.lower()]
            assert head.get_list(asked) == values
            assert head.get(asked) == (",".join(values) if values else None)
            assert (asked in head) == bool(values)
    assert head.get("x-a") == "b,second" and head.get("Retry-After", "none") == "none"


def test_the_final_head_is_the_first_complete_one_that_is_not_interim() -> None:
    lines = [b"HTTP/1.1 100 Continue\r\n", b"\r\n", b"HTTP/1.1 103 Early Hints\n", b"Link: <a>\n", b"\n",
             b"HTTP/1.1 200 OK\r\n", b"Content-Type: application/json\r\n", b"\r\n", b"X-Trailer: 1\r\n", b"\r\n"]
    found = final_head(lines)
    assert found is not None
    assert found[0] == 200 and list(found[1]) == [("Content-Type", "application/json")]
    assert final_head(lines[:5]) is None  # interim heads only
    assert final_head(lines[:7]) is None  # the final head cut short: no blank line yet
    folded = final_head([b"HTTP/2 404\r\n", b"X-F: a\r\n", b" b\r\n", b"\r\n"])
    assert folded is not None and folded[1].get("x-f") == "a b" and list(folded[1]) == [("X-F", "a b")]


def test_a_single_head_reads_as_it_does_among_others() -> None:
    """One head alone (the usual answer: read without a loop over its lines) gives what the same
    head gives after an interim one, whatever its line ends."""
    for end in (b"\r\n", b"\n"):
        head = [b"HTTP/1.1 200 OK" + end, b"Content-Type: text/event-stream" + end, b"x-b :  c  " + end,
                b"X-Url: http://a:b/c\r\n", end]
        alone, after = final_head(head), final_head([b"HTTP/1.1 100 Continue\r\n", b"\r\n", *head])
        assert alone is not None and after is not None
        assert alone[0] == after[0] == 200
        assert list(alone[1]) == list(after[1]) == [("Content-Type", "text/event-stream"), ("x-b", "c"),
                                                    ("X-Url", "http://a:b/c")]
        assert alone[1].get("content-type") == "text/event-stream" and alone[1].get("X-B") == "c"


def test_a_head_kept_with_its_status_line_reads_only_its_fields() -> None:
    """The usual head's text is kept whole, status line included: that line is no field, even
    with a colon in it, and a name that stands in it, in another field's name or value, or
    before spaces and a colon reads as the fields read line by line give it."""
    lines = [b"Vary: content-type, Retry-After\r\n", b"Content-Type: text/event-stream \r\n", b"X-Id: 1\r\n",
             b"X-Id-Long: 2\r\n", b"OK :  spaced\r\n", b"Last: end"]
    read = read_head([b"HTTP/1.1 200 OK: fine X-Id\r\n", *lines])
    assert read is not None
    head, fields = read[1], _fields_line_by_line(lines)
    assert list(head) == fields and ("HTTP/1.1 200 OK", "fine X-Id") not in fields
    for name in ("Content-Type", "Vary", "X-Id", "X-ID-LONG", "ok", "Last", "Retry-After", "HTTP/1.1 200 OK", "fine"):
        values = [value for field, value in fields if field.lower() == name.lower()]
        assert head.get(name) == (",".join(values) if values else None), name
    assert head.get("Content-Type") == "text/event-stream" and head.get("last") == "end"
    assert Headers.of([("A", "1"), ("b", "2")]).get("B") == "2" and Headers().get("A") is None


def test_any_head_reads_as_its_lines_read_one_by_one() -> None:
    """Heads made of usual and unusual lines (folded ones, a status line among the fields, a
    space before a colon, odd status lines), in every order: whichever way a head is read, its
    status is the status line's and its fields are those its lines give one by one."""
    import random

    chosen = random.Random(14)
    status_lines = [b"HTTP/1.1 200 OK\r\n", b"HTTP/2 200 \r\n", b"HTTP/1.1 404 Not Found\n", b"HTTP/1.1 abc\r\n",
                    b"HTTP/1.0 302\r\n", b"HTTP/\r\n"]
    field_lines = [b"Content-Type: application/json\r\n", b"content-type :  text/event-stream \r\n",
                   b" folded\r\n", b"\tfolded too\r\n", b"HTTP/1.1 201 Created\r\n", b"X-A: b: c\n",
                   b"nocolon\r\n", b"X-Latin: \xff\r\n", b"Date: Fri, 27 Nov 2026 17:09:26 GMT\r\n",
                   b"X-HTTP/1: no\r\n"]
    for _ in range(3000):
        fields = [chosen.choice(field_lines) for _ in range(chosen.randrange(6))]
        lines = ([chosen.choice(status_lines)] if chosen.random() < 0.9 else []) + fields
        read = read_head(lines)
        first = lines[0].split(None, 2) if lines and lines[0].startswith(b"HTTP/") else []
        status = int(first[1]) if len(first) > 1 and first[1].isdigit() else 0
        if 0 < status < 200:
            assert read is None
            continue
        assert read is not None
        assert read[0] == status
        expected = _fields_line_by_line(lines[1:] if first else lines)
        assert list(read[1]) == expected, lines
        for name in ("Content-Type", "x-a", "X-Latin", "Date"):
            values = [value for field, value in expected if field.lower() == name.lower()]
            assert read[1].get(name) == (",".join(values) if values else None), lines


def test_no_headers_reads_as_an_empty_head() -> None:
    """An exchange's fields before its head is in (a shared constant) read as an empty Headers."""
    empty = Headers()
    for name in ("Content-Type", "Retry-After", "", "x"):
        assert NO_HEADERS.get(name) == empty.get(name) is None
        assert NO_HEADERS.get(name, "dflt") == empty.get(name, "dflt") == "dflt"
        assert (name in NO_HEADERS) == (name in empty) is False
        assert NO_HEADERS.get_list(name) == empty.get_list(name) == []
        for headers in (NO_HEADERS, empty):
            try:
                headers[name]
            except KeyError:
                pass
            else:
                raise AssertionError(f"{name!r} found in an empty head")
    assert list(NO_HEADERS) == list(empty) == list(NO_HEADERS.get_all()) == []
    assert list(relayable(NO_HEADERS, UPSTREAM_PRIVATE)) == list(relayable(empty, UPSTREAM_PRIVATE)) == []
