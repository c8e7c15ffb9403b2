from __future__ import annotations

import re

from appliance.auth.core import Principal
from appliance.errors import LineboxError
from appliance.numbers import PROVINCES, normalize
from web.domain.hotlines import services as hotlines
from web.domain.hotlines.schemas import HotlineOut, HotlineUpdate
from web.domain.screening.schemas import ListName, ScreeningOut, ScreeningPaste
from web.sitecheck import InvalidChange, Problem

LISTS: tuple[ListName, ...] = ("blacklist", "whitelist", "blocked_regions")
MAX_ENTRIES = 10_000
"""Per list: each call is checked against it."""

_SCREEN = re.compile(r"^[0-9]{1,20}\*?\Z")  # the site file's rule (appliance.sitefile.schema)
_AREA_CODE = re.compile(r"^0[0-9]{2,3}\Z")
_SEPARATORS = re.compile(r"[\s\-()（）]")
# How the caller's region is named (appliance.numbers.Region.names): the full
# province and city names, or the area code.
_REGION_SUFFIXES = ("省", "市", "自治区", "特别行政区", "自治州", "地区", "盟")
_SHORT = {p.removesuffix("省").removesuffix("市"): p for p in PROVINCES}
_SHORT.update(
    {
        "内蒙古": "内蒙古自治区",
        "广西": "广西壮族自治区",
        "西藏": "西藏自治区",
        "宁夏": "宁夏回族自治区",
        "新疆": "新疆维吾尔自治区",
        "香港": "香港特别行政区",
        "澳门": "澳门特别行政区",
    }
)


def _number(line: str) -> tuple[str, str]:
    """(entry, problem): a number or prefix as the blacklist and whitelist hold it."""
    compact = _SEPARATORS.sub("", line)
    prefix = compact.endswith("*")
    digits = compact[:-1] if prefix else compact
    if digits.startswith(("+", "00")) and not prefix:
        digits = normalize(digits)  # +86 138… is the mobile 138…
    entry = digits + ("*" if prefix else "")
    if not _SCREEN.match(entry):
        return "", (
            f'{line!r} is not a number or a prefix: digits, optionally ending in * ("0571*")'
        )
    return entry, ""


def _region(line: str) -> tuple[str, str]:
    """(entry, problem): a region named the way callers' regions are."""
    name = line.strip()
    if _AREA_CODE.match(name) or name in PROVINCES or name.endswith(_REGION_SUFFIXES):
        return name, ""
    if name in _SHORT:
        return _SHORT[name], ""
    return "", (
        f"{name!r} is not a region as callers' numbers show it: a province (浙江省), "
        f"a city ({name}市) or an area code (0571)"
    )


def parse(list_name: ListName, text: str) -> list[tuple[int, str]]:
    """(line number, entry) of each entry of a paste, duplicates dropped;
    raises InvalidChange naming every bad line."""
    check = _region if list_name == "blocked_regions" else _number
    entries: list[tuple[int, str]] = []
    seen: set[str] = set()
    problems: list[Problem] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry, problem = check(line.strip())
        if problem:
            problems.append(Problem(key=f"line {n}", message=problem))
        elif entry not in seen:
            seen.add(entry)
            entries.append((n, entry))
    if problems:
        raise InvalidChange(f"{list_name}: nothing saved", problems)
    if len(entries) > MAX_ENTRIES:
        raise InvalidChange(
            f"{list_name}: nothing saved",
            [Problem(key="", message=f"{len(entries)} entries: at most {MAX_ENTRIES}")],
        )
    return entries


def _out(hotline: HotlineOut) -> ScreeningOut:
    return ScreeningOut(
        hotline=hotline.number,
        blacklist=hotline.blacklist,
        whitelist=hotline.whitelist,
        blocked_regions=hotline.blocked_regions,
    )


async def get_screening(principal: Principal, number: str) -> ScreeningOut:
    return _out(await hotlines.get_hotline(principal, number))


async def paste(
    principal: Principal, number: str, list_name: ListName, data: ScreeningPaste
) -> ScreeningOut:
    hotline = await hotlines.get_hotline(principal, number)  # 404 before anything else
    entries = parse(list_name, data.text)
    kept: list[str] = list(getattr(hotline, list_name)) if data.mode == "add" else []
    lines: dict[int, int] = {}
    for n, entry in entries:
        if entry not in kept:
            lines[len(kept)] = n
            kept.append(entry)
    try:
        update = HotlineUpdate()
        setattr(update, list_name, kept)
        updated = await hotlines.update_hotline(principal, number, update)
    except LineboxError as exc:
        # The site file's rules speak of `blacklist[3]`: say which line that was.
        if not isinstance(exc, InvalidChange):
            raise
        problems = []
        for p in exc.problems:
            m = re.match(rf"^{list_name}\[(\d+)\]$", p.key)
            if m and int(m[1]) in lines:
                problems.append(Problem(key=f"line {lines[int(m[1])]}", message=p.message))
            else:
                problems.append(p)
        raise InvalidChange(f"{list_name}: nothing saved", problems) from None
    return _out(updated)
