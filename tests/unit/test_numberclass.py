"""Number classes (号码分类) from FEATURES §1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.numberclass import CLASSES, classify


@pytest.mark.parametrize(
    ("number", "grade", "pattern"),
    [
        ("4006123888", "special", "AAA"),
        ("4006128888", "special", "AAA"),
        ("4006125588", "special", "AABB"),
        ("4006125858", "special", "ABAB"),
        ("4001006345", "special", "1006"),
        ("4006103457", "special", "10xxxx"),
        ("4008203457", "special", "20xxxx"),
        ("4006125559", "A", "AAAB"),
        ("4006125955", "A", "ABAA"),
        ("4006125595", "A", "AABA"),
        ("4006125995", "B", "ABBA"),
        ("4006125466", "B", "tail 66"),
        ("4006125388", "B", "tail 88"),
        ("4006125499", "B", "tail 99"),
        ("4006125345", "B", "ABC"),
        ("4006125987", "B", "CBA"),
        ("4006125400", "C", "tail 00"),
        ("4006125311", "C", "tail 11"),
        ("4006125477", "C", "tail 77"),
        ("4006125473", "D", ""),
        ("4007654321", "B", "CBA"),
        ("4001234567", "B", "ABC"),
    ],
)
def test_examples(number: str, grade: str, pattern: str) -> None:
    c = classify(number)
    assert (c.grade, c.pattern) == (grade, pattern)


def test_special_is_labelled_in_chinese() -> None:
    assert classify("4006128888").label == "特号"
    assert classify("4006125473").label == "D"


def test_the_best_class_wins() -> None:
    # 9999 is AAA (特号), although its tail 99 alone would make it B.
    assert classify("4006129999").grade == "special"
    # 1122 is AABB (特号), although its tail 22 alone would make it C.
    assert classify("4006121122").grade == "special"


@given(st.text(alphabet="0123456789", min_size=0, max_size=20))
def test_every_digit_string_gets_one_class(number: str) -> None:
    assert classify(number).grade in CLASSES
