"""One way to pick a named size profile (quick / default / full) from any stage's table, one error type."""
from __future__ import annotations

from typing import Mapping, TypeVar

from core.io import UserError

T = TypeVar("T")
PROFILE_NAMES = ("quick", "default", "full")


def pick_profile(profiles: Mapping[str, T], name: str, flag: str = "--profile") -> T:
    """profiles[name], or a UserError naming the flag and the choices."""
    if name not in profiles:
        raise UserError(f"{flag} {name}: expected one of {', '.join(profiles)}")
    return profiles[name]
