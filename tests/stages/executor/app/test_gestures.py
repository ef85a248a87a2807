"""W3C Actions payloads for the APP gestures (pure)."""
from __future__ import annotations

from typing import Any

import pytest

from stages.executor.app import gestures


def moves(actions: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [(a["type"], a.get("x"), a.get("y"), a.get("duration")) for a in actions[0]["actions"]]


@pytest.mark.parametrize("value, extent, expected", [(0.5, 844, 422), (0, 844, 0), (0.999, 100, 100), (1, 844, 1),
                                                     (300, 844, 300), (12.6, 844, 13)])
def test_absolute_treats_values_below_one_as_fractions(value: float, extent: int, expected: int) -> None:
    assert gestures.absolute(value, extent, "x") == expected


def test_absolute_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="x=-1"):
        gestures.absolute(-1, 100, "x")


def test_tap_long_press_and_swipe_shapes() -> None:
    assert moves(gestures.tap(5, 6)) == [("pointerMove", 5, 6, 0), ("pointerDown", None, None, None),
                                         ("pause", None, None, 100), ("pointerUp", None, None, None)]
    assert moves(gestures.long_press(5, 6, 1500))[2] == ("pause", None, None, 1500)
    assert moves(gestures.swipe(1, 2, 3, 4, 250))[2] == ("pointerMove", 3, 4, 250)
    assert [m[0] for m in moves(gestures.double_tap(1, 1))].count("pointerDown") == 2
    assert moves(gestures.drag(1, 2, 3, 4))[2:4] == [("pause", None, None, gestures.DRAG_HOLD_MS),
                                                      ("pointerMove", 3, 4, 500)]


@pytest.mark.parametrize("direction, start, end", [
    ("left", (90, 60), (10, 60)), ("right", (10, 60), (90, 60)),
    ("up", (50, 84), (50, 36)), ("DOWN", (50, 36), (50, 84)),
])
def test_direction_swipe_moves_the_finger_towards_the_direction(direction: str, start: tuple[int, int],
                                                                end: tuple[int, int]) -> None:
    steps = moves(gestures.direction_swipe(direction, 0, 20, 100, 80))
    assert steps[0][1:3] == start and steps[2][1:3] == end


def test_direction_swipe_rejects_unknown_direction() -> None:
    with pytest.raises(ValueError, match="up/down/left/right"):
        gestures.direction_swipe("sideways", 0, 0, 10, 10)


def test_pinch_uses_two_fingers_moving_apart_or_together() -> None:
    out = gestures.pinch(100, 200, 50, outward=True)
    assert [f["id"] for f in out] == ["finger1", "finger2"]
    assert [(f["actions"][0]["x"], f["actions"][2]["x"]) for f in out] == [(95, 50), (105, 150)]
    inward = gestures.pinch(100, 200, 50, outward=False)
    assert [(f["actions"][0]["x"], f["actions"][2]["x"]) for f in inward] == [(50, 95), (150, 105)]
    assert {f["actions"][0]["y"] for f in out + inward} == {200}
