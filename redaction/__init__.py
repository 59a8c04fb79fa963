"""Secret and PII redaction: patterns with a bounded match length, and the scanners that
apply them to whole texts and to texts that arrive in pieces (streamed answers)."""
