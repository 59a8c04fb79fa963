"""Fresh request ids (ops/request_ids.py): drawn in batches, each a random version-4 UUID's hex."""

from __future__ import annotations

import uuid

from ops.request_ids import BATCH, RequestIds, draw


def test_each_id_is_a_random_uuid4_as_32_hex_digits() -> None:
    for text in draw(BATCH):
        given = uuid.UUID(hex=text)
        assert given.hex == text
        assert given.version == 4 and given.variant == uuid.RFC_4122


def test_ids_do_not_repeat_across_batches() -> None:
    ids = RequestIds()
    seen = [ids.fresh() for _ in range(3 * BATCH + 1)]
    assert len(set(seen)) == len(seen)
