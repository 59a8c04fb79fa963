"""Format pairs and stream converters, looked up by pair and by name.

The compiler plans each chat route's chain here once per (re)load and checks that
its formats line up; requests only call the resolved factories.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from converters.base import Chain, Context, ConverterSpec
from converters.pairs import PAIRS
from converters.translation import Translation


class UnsupportedConversion(ValueError):
    """No translation exists yet between these two wire formats."""


@dataclass(frozen=True, slots=True)
class ChainPlan:
    """A resolved chain and the translation of its pair: builds a fresh Chain per request
    without looking anything up."""

    specs: tuple[ConverterSpec, ...]
    translation: Translation

    def build(self, context: Context) -> Chain:
        converters = []
        for spec in self.specs:  # a loop, not a comprehension: each is a call of its own on 3.11
            converters.append(spec.factory(context))
        return Chain(converters)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)


@dataclass(frozen=True, slots=True)
class Registry:
    """Translations by (client format, provider format); converters by the names routes use.

    A pair's stream converters are registered under their names with it, so that a
    route's `converters:` list can name any of them.
    """

    translations: Mapping[tuple[str, str], Translation]
    converters: Mapping[str, ConverterSpec]

    @classmethod
    def of(cls, pairs: Iterable[Translation]) -> Registry:
        """The registry of `pairs`; ValueError when two clash or a pair's stream does not line up."""
        translations: dict[tuple[str, str], Translation] = {}
        converters: dict[str, ConverterSpec] = {}
        for pair in pairs:
            if translations.setdefault((pair.client, pair.provider), pair) is not pair:
                raise ValueError(f"two translations from {pair.client} clients to {pair.provider} providers")
            current = pair.provider
            for spec in pair.stream:
                if converters.setdefault(spec.name, spec) is not spec:
                    raise ValueError(f"two converters are named '{spec.name}'")
                current = _follow(spec, current)
            _check_end(current, pair.client)
        return cls(MappingProxyType(translations), MappingProxyType(converters))

    def plan(self, client_format: str, provider_format: str, extra: tuple[str, ...] = ()) -> ChainPlan:
        """The chain for a route and provider; ValueError says what does not line up."""
        translation = self.translations.get((client_format, provider_format))
        if translation is None:
            raise UnsupportedConversion(
                f"no conversion from {provider_format} streams to {client_format} clients is available"
            )
        specs = list(translation.stream)
        current = client_format  # where the pair's own converters end
        for name in extra:
            spec = self.converters.get(name)
            if spec is None:
                raise ValueError(f"unknown converter '{name}' (known: {', '.join(sorted(self.converters))})")
            current = _follow(spec, current)
            specs.append(spec)
        _check_end(current, client_format)
        return ChainPlan(tuple(specs), translation)


def _follow(spec: ConverterSpec, current: str) -> str:
    """The format after `spec`, given a stream in format `current`."""
    if spec.accepts != current:
        raise ValueError(f"converter '{spec.name}' reads {spec.accepts} streams but is given {current}")
    return spec.produces


def _check_end(current: str, client_format: str) -> None:
    if current != client_format:
        raise ValueError(f"chain ends in {current} but the client speaks {client_format}")


BUILT_IN = Registry.of(PAIRS)
plan = BUILT_IN.plan  # what the compiler calls
