"""Touch gestures as W3C Actions payloads (``POST /session/:id/actions``), built as plain data.

Every APP view gesture (taps, long press, swipes, drags, pinch) is one ``actions`` list of touch pointer
sources, so the same code drives UiAutomator2, XCUITest and the fake driver, and a test can compare the
exact payload (the fake driver records it: ``driver.get_log("actions")``). Coordinates are viewport pixels;
``absolute`` turns the original's screen fractions (values < 1, reference §6.3) into pixels.
"""
from __future__ import annotations

from typing import Any

__all__ = ["absolute", "tap", "double_tap", "long_press", "swipe", "drag", "pinch", "direction_swipe",
           "TAP_MS", "DRAG_HOLD_MS"]

Action = dict[str, Any]
Actions = list[Action]

TAP_MS = 100          # press length of a tap (the Appium Python client's tap uses 100 ms too)
DRAG_HOLD_MS = 600    # hold before moving so the platform sees a drag, not a swipe
SWIPE_MS = 300        # default swipe length when a case leaves duration empty


def absolute(value: float, extent: int, name: str) -> int:
    """A coordinate from a case: below 1 it is a fraction of the screen extent, else pixels."""
    number = float(value)
    if number < 0:
        raise ValueError(f"坐标 {name}={value} 不能为负数")
    return int(round(number * extent)) if number < 1 else int(round(number))


def _finger(name: str, steps: list[Action]) -> Action:
    return {"type": "pointer", "id": name, "parameters": {"pointerType": "touch"}, "actions": steps}


def _move(x: int, y: int, ms: int = 0) -> Action:
    return {"type": "pointerMove", "duration": int(ms), "x": int(x), "y": int(y), "origin": "viewport"}


def _down() -> Action:
    return {"type": "pointerDown", "button": 0}


def _up() -> Action:
    return {"type": "pointerUp", "button": 0}


def _pause(ms: int) -> Action:
    return {"type": "pause", "duration": int(ms)}


def tap(x: int, y: int) -> Actions:
    return [_finger("finger1", [_move(x, y), _down(), _pause(TAP_MS), _up()])]


def double_tap(x: int, y: int) -> Actions:
    return [_finger("finger1", [_move(x, y), _down(), _pause(TAP_MS), _up(), _pause(TAP_MS),
                                _down(), _pause(TAP_MS), _up()])]


def long_press(x: int, y: int, ms: int) -> Actions:
    return [_finger("finger1", [_move(x, y), _down(), _pause(ms), _up()])]


def swipe(fx: int, fy: int, tx: int, ty: int, ms: int = SWIPE_MS) -> Actions:
    return [_finger("finger1", [_move(fx, fy), _down(), _move(tx, ty, ms), _up()])]


def drag(fx: int, fy: int, tx: int, ty: int, ms: int = 500) -> Actions:
    """Press, hold ``DRAG_HOLD_MS`` (pick up), move, release."""
    return [_finger("finger1", [_move(fx, fy), _down(), _pause(DRAG_HOLD_MS), _move(tx, ty, ms), _up()])]


def pinch(cx: int, cy: int, spread: int, outward: bool, ms: int = 400) -> Actions:
    """Two fingers on a horizontal line through (cx, cy): outward (放大) from 10 % to 100 % of ``spread``
    either side of the centre, inward (缩小) the reverse."""
    near, far = max(1, spread // 10), max(2, spread)
    start, end = (near, far) if outward else (far, near)
    fingers = []
    for name, sign in (("finger1", -1), ("finger2", 1)):
        fingers.append(_finger(name, [_move(cx + sign * start, cy), _down(), _move(cx + sign * end, cy, ms), _up()]))
    return fingers


# finger path as fractions of the area, per swipe direction: the finger moves *towards* the direction
_DIRECTIONS = {"left": ((0.9, 0.5), (0.1, 0.5)), "right": ((0.1, 0.5), (0.9, 0.5)),
               "up": ((0.5, 0.8), (0.5, 0.2)), "down": ((0.5, 0.2), (0.5, 0.8))}


def direction_swipe(direction: str, left: int, top: int, width: int, height: int, ms: int = SWIPE_MS) -> Actions:
    """A swipe across the rectangle in ``direction`` (left/right/up/down: where the finger goes)."""
    try:
        (fx, fy), (tx, ty) = _DIRECTIONS[direction.strip().lower()]
    except KeyError:
        raise ValueError(f"滑动方向必须是 up/down/left/right, 实际为 {direction!r}") from None
    return swipe(left + int(width * fx), top + int(height * fy), left + int(width * tx), top + int(height * ty), ms)
