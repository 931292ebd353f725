"""The allowed values of a config's named choices, and the checks of beta and the members.

They live here, free of Keras, so that checking a config (``dpe-tutorial
presets``, ``fields``, a bad ``--set``) starts no backend. The modules that
use them (:mod:`~dpe_tutorial.method.ensemble`, :mod:`~dpe_tutorial.method.kl`,
:mod:`~dpe_tutorial.method.training`, :mod:`~dpe_tutorial.method.models`) import them from
here.
"""

from __future__ import annotations

import math
import numbers
import re
import sys

from . import checks

LAYOUTS = ("branches", "grouped")
# how a run spreads over the local devices (dpe_tutorial.method.distribution)
DISTRIBUTIONS = ("none", "data", "members")
# The default: the papers' form at a tenth of E / N, the arm the CIFAR-10
# objective study's pre-registered rule chose (results/objective-study;
# studies.default_rule, and tests/test_studies.py checks that they agree).
# Its differences from a plain ensemble there are small, read with 95 % intervals
# in results/objective-study/README.md (README, "The objective and beta"). On
# digits (the smoke preset)
# it stays within 0.03 of a plain ensemble's accuracy, as every form does at
# this beta and not at E / N (scripts/smoke_forms.py).
DEFAULT_BETA = "elbo*0.1"
DEFAULT_KL_FORM = "paper"
_TEMPERED = re.compile(r"^elbo\s*\*\s*(\S+)$")

FORMS = ("exclusive", "inclusive", "paper")
# the names used before: refused with a message that names the new one
RENAMED_FORMS = {"forward": "exclusive", "reverse": "inclusive"}

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("cosine", "constant")

# The member builders of dpe_tutorial.method.models (a test keeps the two in step)
BUILTIN_MEMBERS = ("resnet18", "gal_cnn", "small_cnn", "mlp")


def member_names() -> tuple[str, ...]:
    """The member builders a config may name: the built-in ones, and any registered since.

    Registering one (:func:`~dpe_tutorial.method.models.register_member`) imports
    :mod:`dpe_tutorial.method.models`; until then only the built-in names exist.
    """
    models = sys.modules.get("dpe_tutorial.method.models")
    return tuple(models.MEMBERS) if models is not None else BUILTIN_MEMBERS


def elbo_multiple(beta, name: str = "beta") -> float | None:
    """How many times E / N ``beta`` asks for, or None for a fixed number; checks ``beta``.

    ``"elbo"`` is 1; ``"elbo*0.01"`` is 0.01 (a tempered ELBO weight); a
    number >= 0 is a fixed beta. Anything else raises ValueError (``name``
    names it).
    """
    factor = math.nan  # invalid unless found valid below
    if isinstance(beta, str):
        text = beta.strip()
        match = _TEMPERED.match(text)
        if text == "elbo":
            factor = 1.0
        elif match:
            try:
                factor = float(match.group(1))
            except ValueError:
                pass
    elif not isinstance(beta, bool) and isinstance(beta, numbers.Real):
        if math.isfinite(beta) and beta >= 0:
            return None
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(
            f'{name} must be a finite number >= 0, "elbo" (E / N) or "elbo*F" with a number '
            f"F > 0 (F times E / N), got {beta!r}"
        )
    return factor


# The inclusive and papers' forms divide by each weight's spread s^2 over the
# members. For E members drawn independently, E s^2 / sigma^2 is chi-square with
# E - 1 degrees of freedom, and the mean of 1 / s^2 is finite only for E >= 4:
# with 2 or 3 members, among a network's thousands of weights some start with
# a spread near 0, and the first steps of gradient descent throw them out (NaN).
MIN_MEMBERS_DIVIDING_FORMS = 4
DIVIDING_FORMS = ("inclusive", "paper")


def check_members(n_members, beta, name: str = "n_members", kl_form=None) -> int:
    """``n_members`` as an int: at least 1, at least 2 unless ``beta`` is 0, and at
    least :data:`MIN_MEMBERS_DIVIDING_FORMS` for a form that divides by the spread."""
    n = checks.whole_number(name, n_members, minimum=1)
    if n < 2 and beta != 0:
        raise ValueError(
            f"{name} must be at least 2 when beta is not 0 (the KL penalty needs a spread "
            f"between members), got {n}; use beta=0 for a single network"
        )
    if kl_form in DIVIDING_FORMS and beta != 0 and n < MIN_MEMBERS_DIVIDING_FORMS:
        raise ValueError(
            f"{name} must be at least {MIN_MEMBERS_DIVIDING_FORMS} for kl_form {kl_form!r}, "
            f"got {n}: it divides by the members' spread, which fewer members leave near 0 "
            "for some weights, and training blows up; use more members, "
            "kl_form='exclusive' or beta=0"
        )
    return n


def check_form(form, field: str = "KL form") -> None:
    """Raise ValueError for a form that is not one of :data:`FORMS` (old names say the new one)."""
    if isinstance(form, str) and form in RENAMED_FORMS:
        raise ValueError(
            f"{field} {form!r} was renamed: use {RENAMED_FORMS[form]!r} "
            f"({'KL(q||p)' if RENAMED_FORMS[form] == 'exclusive' else 'KL(p||q)'})"
        )
    checks.one_of(field, form, FORMS)
