"""A spreadsheet cell's value as the sheet shows it: numbers by their Excel number format
(decimals, thousands separators, percent, currency and other literal text), dates without
midnight, booleans as TRUE/FALSE.

A format code has up to four sections (positive;negative;zero;text); the first one is read, so
a negative number shows with its minus sign. Colours and conditions ([Red]), padding (`_)`),
fill (`* `) and locale tags are left out; quoted text, escaped characters and a currency tag's
symbol (`[$€-407]`) are kept where the format puts them. A format this doesn't follow (dates,
fractions, phone-number patterns, text) leaves the number as it is stored.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

# one token of a format code: "quoted text", \x, _x (padding), *x (fill), [tag], or one character
_TOKEN = re.compile(r'"[^"]*"?|\\.|[_*].?|\[[^\]]*\]?|.', re.S)
_DATE_LETTERS = set("yYmMdDhHsSgGbB")  # a date or time format: openpyxl gives those as dates


@dataclass(frozen=True)
class NumberFormat:
    """The first section of a number format code, as far as it is followed."""

    prefix: str = ""
    suffix: str = ""
    decimals: int = 0
    thousands: bool = False
    percent: bool = False
    scientific: bool = False

    def show(self, value: float) -> str:
        shown = value * 100 if self.percent else value
        if self.scientific:
            number = f"{shown:.{self.decimals}E}"
        else:  # rounded half away from zero, as Excel shows it (Python's rounding is to even)
            exact = Decimal(repr(shown)).quantize(Decimal(1).scaleb(-self.decimals), ROUND_HALF_UP)
            number = f"{exact:{',' if self.thousands else ''}.{self.decimals}f}"
        return f"{self.prefix}{number}{self.suffix}"


def cell_text(value: Any, number_format: str = "") -> str:
    """A cell's value as the sheet would show it: numbers by their format, integral ones
    without '.0' when it has none, dates without midnight."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, int | float):
        return _number(value, number_format)
    return " ".join(str(value).split())


def _number(value: float, number_format: str) -> str:
    shown = parse_format(number_format)
    if shown is not None:
        try:
            return shown.show(value)
        except (InvalidOperation, ValueError, OverflowError):  # inf, nan, or too many digits
            pass
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


def parse_format(code: str) -> NumberFormat | None:
    """The number format of `code`'s first section, or None for one this doesn't follow."""
    prefix, suffix = [], []
    decimals, point, thousands, percent, started = 0, False, False, False, False
    for token in _TOKEN.findall(code or ""):
        first = token[0]
        if token == ";":
            break
        if first in "0#?":
            if suffix:  # digits after literal text: a pattern such as 000-0000
                return None
            started, decimals = True, decimals + (1 if point else 0)
        elif token == ".":
            started, point = True, True
        elif token == "," and started and not point:
            thousands = True
        elif token in "Ee" and started:  # 0.00E+00: the exponent's own digits follow
            return NumberFormat("".join(prefix), "", decimals, scientific=True)
        elif first in "@/" or first in _DATE_LETTERS:
            return None
        elif first not in "_*,":  # padding and fill take no text of their own
            percent = percent or token == "%"
            (suffix if started else prefix).append(_literal(token))
    if not started:
        return None
    return NumberFormat("".join(prefix), "".join(suffix), decimals, thousands, percent)


def _literal(token: str) -> str:
    """The text a token shows: quoted text, an escaped character, a currency tag's symbol."""
    if token.startswith('"'):
        return token.strip('"')
    if token.startswith("\\"):
        return token[1:]
    if token.startswith("["):  # [$€-407] shows €; [Red], [>100], [$-409] show nothing
        return token[2:].split("-", 1)[0].rstrip("]") if token.startswith("[$") else ""
    return token
