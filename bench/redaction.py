"""Cost of redaction per KiB of text: buffered, and streamed as the gateway sees answers.

    python -m bench.redaction            (or: python bench/redaction.py)
    python -m bench.redaction --seconds 2 --kib 16

The text is this repository's README (prose, code, tables, the odd key-like word),
redacted with the presets secrets and pii and the entropy check. Rows:

- `buffered text`: one `Scanner.redact` over the whole text (a request's message, a
  buffered answer's content);
- `stream, 1 event/read`: an OpenAI SSE stream of the text in deltas of about four
  characters (a token each), fed to the answer converter one event per call, as a
  provider's network reads deliver them one token at a time;
- `stream, 4 KiB reads`: the same stream in 4 KiB reads (a fast upstream), where the
  pieces of one read are redacted together;
- `stream, no redaction`: the same reads through SSE framing alone, for scale.

Reported as microseconds per KiB of answer text (not of SSE bytes), and for streams per
event. Pure CPU, one core. A stream's time is the sum of each call's best time over the
runs (see `_time_calls`), so a busy machine skews it little.

`--false-positives` instead runs the request presets over this repository's own
tracked source and docs, and prints every match (kind, file, line, what matched):
none of it is a real secret, so every match is a false positive or a test fixture
that imitates a key on purpose.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from converters.sse import SSEFramer  # noqa: E402
from redaction.answers import AnswerRedactor  # noqa: E402
from redaction.policy import Policy  # noqa: E402
from redaction.presets import PII, SECRETS, entropy_pattern  # noqa: E402
from redaction.scanner import Scanner  # noqa: E402


def _text(kib: int) -> str:
    readme = (ROOT / "README.md").read_text()
    return (readme * (kib * 1024 // len(readme) + 1))[: kib * 1024]


def _events(text: str) -> list[bytes]:
    pieces = [text[i:i + 4] for i in range(0, len(text), 4)]
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def _reads(events: list[bytes], size: int) -> list[bytes]:
    stream = b"".join(events)
    return [stream[i:i + size] for i in range(0, len(stream), size)]


def _time(run: Callable[[], object], seconds: float) -> float:
    """Seconds per run, best of the runs that fit in `seconds`."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def _time_calls(make: Callable[[], Any], feeds: list[bytes], seconds: float) -> float:
    """Seconds for one converter (`make()`) over `feeds`: the sum, over its calls (each
    feed, then close), of each call's best time in the runs that fit in `seconds`. A long
    run is rarely spared by a shared machine's other work; one call usually is."""
    best = [float("inf")] * (len(feeds) + 1)
    clock = time.perf_counter
    deadline = clock() + seconds
    while clock() < deadline:
        converter = make()
        for i, data in enumerate(feeds):
            started = clock()
            converter.feed(data)
            best[i] = min(best[i], clock() - started)
        started = clock()
        converter.close()
        best[-1] = min(best[-1], clock() - started)
    return sum(best)


def false_positives() -> int:
    """Every match of the presets (secrets, pii; then the entropy check) in the tracked files."""
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    suffixes = (".py", ".md", ".yaml", ".json", ".lua", ".toml", ".txt", ".example", ".service")
    files = [ROOT / n for n in names.split() if (ROOT / n).suffix in suffixes]
    sets = (("secrets + pii", SECRETS + PII), ("entropy alone", (entropy_pattern(24, 4.0, 3),)))
    for title, patterns in sets:
        scanner = Scanner(patterns, b"k" * 32)
        kinds: Counter[str] = Counter()
        size = lines = 0
        for path in files:
            text = path.read_text(errors="replace")
            size += len(text)
            for number, line in enumerate(text.splitlines(), 1):
                lines += 1
                found: list[str] = []
                if scanner.redact(line, found) != line:
                    kinds.update(found)
                    print(f"  {found} {path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
        total = sum(kinds.values())
        print(f"{title}: {total} matches in {len(files)} files, {lines} lines, {size / 1e6:.2f} MB: "
              f"{total / lines * 1000:.2f} per 1000 lines; by kind {dict(kinds)}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per row")
    parser.add_argument("--kib", type=int, default=16, help="answer text size")
    parser.add_argument("--false-positives", action="store_true", help="scan this repository instead")
    args = parser.parse_args(argv)
    if args.false_positives:
        return false_positives()
    scanner = Scanner(SECRETS + PII + (entropy_pattern(24, 4.0, 3),), b"bench-key" * 4)
    policy = Policy("bench", scanner)
    text = _text(args.kib)
    events = _events(text)
    reads = _reads(events, 4096)

    def redactor() -> AnswerRedactor:
        return AnswerRedactor(policy, "openai", lambda kind: None)

    rows = {
        "buffered text": lambda: _time(lambda: scanner.redact(text, []), args.seconds),
        "stream, 1 event/read": lambda: _time_calls(redactor, events, args.seconds),
        "stream, 4 KiB reads": lambda: _time_calls(redactor, reads, args.seconds),
        "stream, no redaction": lambda: _time_calls(SSEFramer, reads, args.seconds),
    }
    print(f"{'row':24} {'us/KiB':>10} {'us/event':>10}   ({args.kib} KiB of text, {len(events)} events)")
    for name, timed in rows.items():
        seconds = timed()
        per_event = f"{seconds / len(events) * 1e6:10.2f}" if name.startswith("stream") else ""
        print(f"{name:24} {seconds / args.kib * 1e6:10.1f} {per_event}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
