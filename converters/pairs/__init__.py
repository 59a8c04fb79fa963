"""Every format pair the gateway translates, one module each, named client_to_provider.

The name follows the request; answers go the other way, so openai_to_anthropic holds
the "anthropic-to-openai" stream converter. Adding a pair: a module here that defines
its TRANSLATION, and its line below.
"""

from __future__ import annotations

from converters.pairs import (
    anthropic_to_anthropic,
    anthropic_to_openai,
    openai_to_anthropic,
    openai_to_openai,
)
from converters.translation import Translation

PAIRS: tuple[Translation, ...] = (
    openai_to_openai.TRANSLATION,
    anthropic_to_anthropic.TRANSLATION,
    openai_to_anthropic.TRANSLATION,
    anthropic_to_openai.TRANSLATION,
)
