"""Argument checks, each rule stated once; every message names the argument and what it got.

``name`` is how the message names the argument: ``"n_members"`` for a
function argument, ``"config field 'members'"`` for a config field. A bool is
never a number here, though Python counts it as one: ``True`` members is a
mistake, not 1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable


def whole_number(name: str, value, minimum: int | None = None, optional: bool = False):
    """``value`` as an int; ValueError unless it is a whole number (>= ``minimum``).

    ``optional`` lets None through (a config's ``null``).
    """
    if optional and value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or (minimum is not None and value < minimum)
    ):
        bound = "" if minimum is None else f" >= {minimum}"
        null = " or null" if optional else ""
        raise ValueError(f"{name} must be a whole number{bound}{null}, got {value!r}")
    return int(value)


def finite_number(name: str, value, minimum: float | None = None, strict: bool = False) -> float:
    """``value`` as a float; ValueError unless it is finite and ``>= minimum`` (``>`` if strict)."""
    valid = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and (minimum is None or value > minimum or (value == minimum and not strict))
    )
    if not valid:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def one_of(name: str, value, allowed: Iterable):
    """``value``; ValueError, listing the allowed values, unless it is one of them."""
    allowed = tuple(allowed)
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


def flag(name: str, value) -> bool:
    """``value``; ValueError unless it is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value
