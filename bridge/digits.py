"""Zero-padded decimal texts of small numbers, for the times the bridge writes field by field.

A table look-up per field instead of a `%02d` conversion: the event and receive times are written three
times per record (tests/unit/test_time_text.py pins the texts to the library calls they replace).
"""

from __future__ import annotations

from typing import Final

#: "00" to "99": months, days, hours, minutes, seconds, and a year's two halves.
TWO_DIGITS: Final = tuple(f"{n:02d}" for n in range(100))
#: "000" to "999": milliseconds.
THREE_DIGITS: Final = tuple(f"{n:03d}" for n in range(1000))
