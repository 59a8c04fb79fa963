"""The mock provider's model-name selectors: one out of range is ignored, not played."""

from __future__ import annotations

from mock_provider.behaviour import MAX_BIG_KIB, parse_model


def test_a_big_reply_is_played_up_to_its_bound_and_an_absurd_one_ignored() -> None:
    assert parse_model("gpt-big-65536-piece-1").big_kib == 65536
    assert parse_model(f"gpt-big-{MAX_BIG_KIB}").big_kib == MAX_BIG_KIB
    # 20 GB of filler would take the mock down (a demo's `make run` with it): an ordinary reply
    absurd = parse_model("gpt-big-20000000")
    assert absurd.big_kib is None and absurd == parse_model("gpt")
