"""The topology's schedule (`rate(N minutes|hours|days)`, as EventBridge takes it) rendered as
the six-field NCRONTAB expression an Azure Functions timer trigger takes
(`{second} {minute} {hour} {day} {month} {day-of-week}`), and back to a period for the
emulator. Only periods that divide the next unit evenly are accepted, so every firing is the
same distance from the last (`rate(7 minutes)` would fire at :56 and again at :00)."""

from __future__ import annotations

import re

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    m = _RATE.fullmatch(expression.strip())
    if not m:
        raise ValueError(f"schedule {expression!r}: expected rate(N minutes|hours|days)")
    n = int(m.group(1))
    if n < 1:
        raise ValueError(f"schedule {expression!r}: N must be at least 1")
    return n * _UNIT[m.group(2).rstrip("s")]


def ncrontab(expression: str) -> str:
    """rate(...) -> NCRONTAB, e.g. rate(1 hour) -> '0 0 * * * *', rate(15 minutes) ->
    '0 */15 * * * *'."""
    seconds = rate_seconds(expression)
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 3600 and 60 % minutes == 0:
        return "0 * * * * *" if minutes == 1 else f"0 */{minutes} * * * *"
    if seconds % 3600 == 0 and hours < 24 and 24 % hours == 0:
        return "0 0 * * * *" if hours == 1 else f"0 0 */{hours} * * *"
    if seconds == 86400:
        return "0 0 0 * * *"
    raise ValueError(f"schedule {expression!r}: an Azure timer needs a period that divides an "
                     "hour (minutes) or a day (hours), or exactly one day")


_NCRON = re.compile(r"^0 (?:(\*|\*/(\d+)) \* \* \* \*|0 (\*|\*/(\d+)) \* \* \*|0 0 \* \* \*)$")


def ncrontab_seconds(expression: str) -> int:
    """The period of an NCRONTAB expression that `ncrontab` produces (for the emulator)."""
    m = _NCRON.fullmatch(expression.strip())
    if not m:
        raise ValueError(f"NCRONTAB {expression!r}: only the periodic forms ncrontab() "
                         "produces are emulated")
    if m.group(1):
        return 60 * int(m.group(2) or 1)
    if m.group(3):
        return 3600 * int(m.group(4) or 1)
    return 86400
