"""The built-in patterns: `secrets` (credentials by their published shapes) and `pii`, and
the entropy check for random tokens that no shape names.

Every pattern has a bounded match length (see patterns.py) and, where its shape allows,
a `start` regex and a `run` class, so a stream holds back a word or so rather than the
longest possible match. Checks with a checksum (card numbers: Luhn; IBAN: mod 97) or a
character mix keep numbers and words that only look alike.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from redaction.patterns import Pattern, pattern, trie

_KEY = r"A-Za-z0-9_\-"  # the characters of most API keys
_NOT_KEY = r"(?<![A-Za-z0-9_\-])"


def begins(*literals: str, whole: bool = True, edge: str = "") -> str:
    """A `start` regex for patterns that begin with one of `literals`: it matches where one
    of them begins (`whole`), and where only its first characters stand at the end of the
    text. Without `whole`, the caller adds the literals with what must follow them. With
    `edge` (a character class's inside), not after one of those characters."""
    return _branches(trie(literals), whole, edge, top=True)


def _branches(node: dict[str, Any], whole: bool, edge: str = "", top: bool = False) -> str:
    """The regex of a trie node: each next character and what may follow it, or (past the
    first character) the end of the text, or (`whole`, where a literal ends) nothing more.
    The first character is checked against `edge` after it is read: a regex that begins
    with a character, not a lookbehind, lets the engine skip to where one stands."""
    options = [re.escape(char) + (f"(?<![{edge}]{re.escape(char)})" if edge and top else "")
               + _branches(child, whole) for char, child in node.items() if char]
    if not top:
        options.insert(0, r"\Z")
        if "" in node and whole:
            options.append("")
    return "(?:" + "|".join(options) + ")"


def _mixed(value: str) -> bool:
    """Generated keys mix digits, upper and lower case; words joined by hyphens do not."""
    return any(c.isdigit() for c in value) and any(c.isupper() for c in value) and any(
        c.islower() for c in value)


# Card networks' number prefixes (IIN ranges) with the lengths they issue.
_NETWORKS = (
    (re.compile(r"4"), (13, 16, 19)),  # Visa
    (re.compile(r"5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), (16,)),  # Mastercard
    (re.compile(r"3[47]"), (15,)),  # American Express
    (re.compile(r"6(?:011|5|4[4-9]|2)"), (16, 17, 18, 19)),  # Discover, UnionPay
    (re.compile(r"3(?:5|0|[689])"), (14, 15, 16, 17, 18, 19)),  # JCB, Diners Club
)


def luhn(value: str) -> bool:
    """A card number: a network's prefix and length, and the Luhn check digit."""
    number = "".join(c for c in value if c.isdigit())
    if not any(prefix.match(number) and len(number) in lengths for prefix, lengths in _NETWORKS):
        return False
    digits = [int(c) for c in number]
    if len(set(digits)) == 1:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban(value: str) -> bool:
    """The ISO 13616 check: country and check digits moved to the end, read as a number, mod 97 is 1."""
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ssn(value: str) -> bool:
    """Never issued: area 000, 666 or 900-999, group 00, serial 0000."""
    area, group, serial = value.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone(value: str) -> bool:
    return 10 <= sum(c.isdigit() for c in value) <= 15


# Code that reads a value rather than a value: a name (`api_key=API_KEY`), an attribute
# (`password=self.password`); a template (`${SECRET}`). A password of letters alone is
# missed with them, the price of not masking every keyword argument in source code.
_REFERENCE = re.compile(r"[A-Za-z_]+|[A-Za-z_]\w*(?:\.\w+)+|[$%<*.].*|.*\$.*")


def _assigned(value: str) -> bool:
    return not _REFERENCE.fullmatch(value)


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")


def random_looking(min_length: int, bits: float, classes: int) -> Callable[[str], bool]:
    """The entropy check: at least `min_length` characters of at least `classes` kinds
    (lower case, upper case, digits) with at least `bits` of Shannon entropy per character;
    never a UUID or a hex digest (ids and hashes are not secrets). Symbols do not count as
    a kind: names, paths and dates mix them with letters and digits, keys rarely need them."""

    def check(value: str) -> bool:
        if len(value) < min_length or _UUID.fullmatch(value) or _HEX.fullmatch(value):
            return False
        kinds = any(c.islower() for c in value) + any(c.isupper() for c in value) + any(
            c.isdigit() for c in value)
        if kinds < classes:
            return False
        size = len(value)
        entropy = -sum(n / size * math.log2(n / size) for n in Counter(value).values())
        return entropy >= bits

    return check


def entropy_pattern(min_length: int, bits: float, classes: int) -> Pattern:
    """Tokens of base64/base64url characters (with their `=` padding) long enough to be keys,
    checked for randomness."""
    token = r"A-Za-z0-9+/_\-"
    edge = rf"(?<![{token}=])"
    return pattern(
        "high_entropy", rf"{edge}[{token}]{{{min_length},510}}={{0,2}}(?![{token}=])",
        start=rf"[{token}](?<![{token}=][{token}])"
              rf"(?:[{token}]{{{min_length - 1}}}|[{token}]{{0,{min_length - 2}}}\Z)",
        valid=random_looking(min_length, bits, classes), run=token + "=", gate=rf"[{token}]{{{min_length}}}",
    )


def _after(literal: str, edge: str) -> str:
    """`literal` not preceded by a character of `edge`, the check put after the literal so
    that the regex engine can skip to the literal's occurrences."""
    return f"{re.escape(literal)}(?<![{edge}]{re.escape(literal)})"


def _keyed(kind: str, prefixes: tuple[str, ...], rest: str, edge: str = _KEY, **options: Any) -> Pattern:
    """A key that begins with one of `prefixes` at a word's start, then `rest`."""
    source = "(?:" + "|".join(_after(p, edge) for p in prefixes) + ")" + rest
    return pattern(kind, source, start=begins(*prefixes, edge=edge), needles=prefixes, **options)


_AWS_KEY = "(?:aws_?)?secret_?(?:access_?)?key"
_AWS_SPELLINGS = tuple(f"{a}secret{b}{c}key" for a in ("", "aws", "aws_") for b in ("", "_")
                       for c in ("", "access", "access_"))
_AWS_SEPARATOR = r"[\"']?\s{0,4}(?:=>|=|:)\s{0,4}[\"']?"
_ASSIGNED = r"(?:\s{0,3}=\s{0,3}[\"']?|[\"']?\s{0,3}:\s{0,3}[\"'])"  # key=value, or "key": "value"
_VALUE = r"^\s\"'`,;&<>()\[\]{}"  # a value's characters: not space, quotes or brackets
_WORDS = ("password", "passwd", "pwd", "secret", "api_key", "apikey", "access_token", "accesstoken",
          "auth_token", "authtoken")

SECRETS: tuple[Pattern, ...] = (
    _keyed("openai_key", ("sk-",), rf"(?!ant-)(?:(?:proj|svcacct|admin)-)?[{_KEY}]{{20,200}}",
           valid=_mixed, run=_KEY),
    _keyed("anthropic_key", ("sk-ant-",), rf"[A-Za-z0-9]{{2,12}}-[{_KEY}]{{32,200}}", run=_KEY),
    _keyed("aws_access_key", ("AKIA", "ASIA"), r"[A-Z0-9]{16}(?![A-Za-z0-9])", edge="A-Za-z0-9",
           run="A-Z0-9"),
    pattern("aws_secret_key",
            rf"{_AWS_KEY}{_AWS_SEPARATOR}(?P<secret>[A-Za-z0-9/+]{{40}})(?![A-Za-z0-9/+=])",
            start=rf"{_AWS_KEY}(?:{_AWS_SEPARATOR}(?:[A-Za-z0-9/+]{{40}}|[A-Za-z0-9/+]{{0,39}}\Z)"
                  r"|[\s\"'=:>]{0,8}\Z)|" + begins(*_AWS_SPELLINGS, whole=False),
            needles=("secret",), around=(0, 4), tail="A-Za-z0-9/+", flags=re.IGNORECASE),
    _keyed("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"[A-Za-z0-9]{36,251}",
           edge="A-Za-z0-9_", run="A-Za-z0-9_"),
    _keyed("github_token", ("github_pat_",), r"[A-Za-z0-9_]{22,244}", edge="A-Za-z0-9_", run="A-Za-z0-9_"),
    _keyed("gitlab_token", ("glpat-",), rf"[{_KEY}]{{20,64}}", run=_KEY),
    _keyed("slack_token", ("xox",), r"[abposrce]-[A-Za-z0-9\-]{10,250}", run=_KEY),
    _keyed("google_api_key", ("AIza",), rf"[{_KEY}]{{35}}(?![{_KEY}])", run=_KEY),
    _keyed("jwt", ("eyJ",), rf"[{_KEY}]{{8,2000}}\.eyJ[{_KEY}]{{8,4000}}\.[{_KEY}]{{8,1500}}",
           run=_KEY + "."),
    pattern("private_key",
            r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----[A-Za-z0-9+/=\s:,\\\-]{16,7000}?"
            r"-----END (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----",
            start=begins("-----BEGIN "), needles=("-----BEGIN ",), run=r"A-Za-z0-9+/=\s:,\\\-"),
    pattern("bearer_token", r"bearer(?<![A-Za-z0-9]bearer)\s{1,4}(?P<secret>[A-Za-z0-9._~+/=\-]{16,2048})",
            start=r"(?<![A-Za-z0-9])(?:bearer(?:\s{1,4}(?:[A-Za-z0-9._~+/=\-]{16}|[A-Za-z0-9._~+/=\-]{0,15}\Z)"
                  r"|\s{0,4}\Z)|" + begins("bearer", whole=False) + ")",
            needles=("bearer",), tail=r"A-Za-z0-9._~+/=\-",
            flags=re.IGNORECASE),
    pattern("url_credentials", r"(?<=://)(?P<secret>[^\s:/?#@]{1,64}:[^\s/?#@]{1,128})@",
            start=r"(?<=://)(?:[^\s:/?#@]{1,64}(?::[^\s/?#@]{0,128}(?:@|\Z)|\Z)|\Z)",
            needles=("://",), around=(-3, -3), run=r"^\s/?#"),
    pattern("password",
            "(?:" + "|".join(_after(w, "A-Za-z0-9") for w in _WORDS) + ")"
            + rf"{_ASSIGNED}(?P<secret>[{_VALUE}]{{4,128}})",
            start=rf"(?<![A-Za-z0-9])(?:(?:{'|'.join(_WORDS)})(?:{_ASSIGNED}(?:[{_VALUE}]{{4}}|[{_VALUE}]{{0,3}}\Z)"
                  r"|[\s\"'=:]{0,8}\Z)|" + begins(*_WORDS, whole=False) + ")",
            needles=_WORDS, valid=_assigned, tail=_VALUE, flags=re.IGNORECASE),
)

_LOCAL = r"A-Za-z0-9._%+\-"
PII: tuple[Pattern, ...] = (
    pattern("email",
            rf"[{_LOCAL}](?<![{_LOCAL}][{_LOCAL}])[{_LOCAL}]{{0,63}}@[A-Za-z0-9\-]{{1,63}}"
            r"(?:\.[A-Za-z0-9\-]{1,63}){0,6}\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])",
            start=rf"[{_LOCAL}](?<![{_LOCAL}][{_LOCAL}])[{_LOCAL}]{{0,63}}(?:@|\Z)", needles=("@",),
            around=(1, 64), run=_LOCAL + "@"),
    pattern("card_number", r"\d(?<![\d.\-]\d)(?:[ \-]?\d){12,18}(?!\d)",
            start=r"\d(?<![\d.\-]\d)(?:(?:[ \-]?\d){12}|(?:[ \-]?\d){0,11}[ \-]?\Z)",
            valid=luhn, run=r"\d \-", shrink=6),
    pattern("phone",
            r"(?:\+(?<![\w+]\+)\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}|\((?<![\w+]\()\d{3}\) ?\d{3}[.\-]\d{4}"
            r"|\d(?<![\w+]\d)\d{2}[.\-]\d{3}[.\-]\d{4})(?!\w)",
            start=r"[+(\d](?<![\w+][+(\d])(?:[\d+() .\-]{8}|[\d+() .\-]{0,7}\Z)",
            valid=_phone, run=r"\d+() .\-", shrink=4),
    pattern("iban",
            r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
            start=r"[A-Z](?<![A-Za-z0-9][A-Z])(?:[A-Z](?:\d|\Z)|\Z)", valid=iban, run="A-Z0-9 "),
    pattern("us_ssn", r"\d(?<![\d\-]\d)\d{2}-\d{2}-\d{4}(?![\d\-])",
            start=r"\d(?<![\d\-]\d)(?:\d\d-\d\d-\d{4}|[\d\-]{0,9}\Z)", valid=_ssn, run=r"\d\-"),
)

PRESETS: dict[str, tuple[Pattern, ...]] = {"secrets": SECRETS, "pii": PII}
KINDS = frozenset(p.kind for group in PRESETS.values() for p in group) | {"high_entropy"}
