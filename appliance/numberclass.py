"""Number classes (号码分类) of 400 numbers, from the digits alone.

FEATURES §1: 特号 (`AAA` tail, `AABB`, `ABAB`, `1006`, `10xxxx`, `20xxxx`),
A (`AAAB`, `ABAA`, `AABA`), B (`ABBA`, tails 66/88/99, `ABC`/`CBA` runs),
C (tails 00/11/22/33/44/55/77), D (everything else). The best class that
matches wins. How the patterns are read:

- letter patterns (`AABB`, `AAAB`, ...) are the last four digits, different
  letters being different digits; `AAA` is the last three digits equal;
- `1006` is a number whose digits after `400` start with 1006 (4001006xxx);
- `10xxxx` / `20xxxx` are numbers whose six subscriber digits (after 400K)
  start with 10 or 20 (4006 10 xxxx);
- `ABC` / `CBA` runs are the last three digits counting up or down by one.
"""

from __future__ import annotations

import msgspec

CLASSES = ("special", "A", "B", "C", "D")
LABELS = {"special": "特号", "A": "A", "B": "B", "C": "C", "D": "D"}


class NumberClass(msgspec.Struct, frozen=True):
    grade: str
    """special (特号), A, B, C or D."""
    pattern: str
    """The pattern that decided it, e.g. `AABB`, `tail 88`; empty for D."""

    @property
    def label(self) -> str:
        return LABELS[self.grade]


def _letters(tail: str) -> str:
    """`5588` → `AABB`: each new digit gets the next letter."""
    seen: dict[str, str] = {}
    out = ""
    for digit in tail:
        if digit not in seen:
            seen[digit] = "ABCD"[len(seen)]
        out += seen[digit]
    return out


def _run(tail: str, step: int) -> bool:
    return all(int(tail[i + 1]) - int(tail[i]) == step for i in range(len(tail) - 1))


def classify(number: str) -> NumberClass:
    """The class of a hotline number; numbers that are not 10-digit 400/800
    numbers are classified on their digits all the same."""
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) < 4:
        return NumberClass("D", "")
    tail4, tail3 = digits[-4:], digits[-3:]
    shape = _letters(tail4)
    subscriber = digits[4:] if len(digits) == 10 else ""
    if len(set(tail3)) == 1:
        return NumberClass("special", "AAA")
    if shape in ("AABB", "ABAB"):
        return NumberClass("special", shape)
    if digits.startswith("4001006"):
        return NumberClass("special", "1006")
    if subscriber[:2] in ("10", "20"):
        return NumberClass("special", subscriber[:2] + "xxxx")
    if shape in ("AAAB", "ABAA", "AABA"):
        return NumberClass("A", shape)
    if shape == "ABBA":
        return NumberClass("B", "ABBA")
    if tail4[-2:] in ("66", "88", "99"):
        return NumberClass("B", "tail " + tail4[-2:])
    if _run(tail3, 1):
        return NumberClass("B", "ABC")
    if _run(tail3, -1):
        return NumberClass("B", "CBA")
    if tail4[-2] == tail4[-1]:
        return NumberClass("C", "tail " + tail4[-2:])
    return NumberClass("D", "")
