"""Option parsing shared by the subcommands: lists of numbers with START:STOP:STEP ranges,
byte sizes with binary suffixes."""

from __future__ import annotations

import math

from genjscc.errors import GenjsccError

__all__ = ["parse_byte_size", "parse_number_list"]

_SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_byte_size(text: str, option: str) -> int:
    """``"4096"``, ``"64K"``, ``"1.5M"``, ``"2G"`` (binary units, ``KiB``/``MB`` spellings
    accepted) -> bytes, at least 1.

    Raises:
        GenjsccError: naming ``option``: not a size, or not positive.
    """
    item = str(text).strip().upper().removesuffix("B").removesuffix("I")
    number, suffix = (item[:-1], item[-1]) if item[-1:] in _SIZE_SUFFIXES else (item, "")
    try:
        value = float(number) * _SIZE_SUFFIXES[suffix]
    except ValueError:
        raise GenjsccError(f"{option} {text!r}: not a size; write e.g. 65536, 64K, 1M or 2G"
                           ) from None
    if not math.isfinite(value) or value < 1:
        raise GenjsccError(f"{option} {text!r}: must be at least 1 byte")
    return int(value)


def parse_number_list(text: str, option: str, max_points: int = 10_000) -> list[float]:
    """``"4,5,6"``, ``"0:6:0.5"`` (stop included) or a comma-separated mix -> list of floats.

    Raises:
        GenjsccError: naming ``option`` (the flag): an empty item, not a number, not finite,
            a range that does not go from START towards STOP, more than ``max_points``.
    """
    values: list[float] = []
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            raise GenjsccError(f"{option} {text!r}: empty item; write e.g. '4,5,6' or '0:6:0.5'")
        fields = item.split(":")
        try:
            numbers = [float(f) for f in fields]
        except ValueError:
            raise GenjsccError(
                f"{option} {text!r}: {item!r} is not a number or START:STOP:STEP range"
            ) from None
        if not all(math.isfinite(v) for v in numbers):
            raise GenjsccError(f"{option} {text!r}: values must be finite")
        if len(numbers) == 1:
            values.append(numbers[0])
        elif len(numbers) == 3:
            start, stop, step = numbers
            if step == 0 or (stop - start) * step < 0:
                raise GenjsccError(
                    f"{option} {text!r}: range {item!r} needs a non-zero STEP going from START "
                    "towards STOP"
                )
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > max_points:
                raise GenjsccError(f"{option} {text!r}: range {item!r} has {count} points")
            values.extend(round(start + i * step, 10) for i in range(count))
        else:
            raise GenjsccError(f"{option} {text!r}: a range is START:STOP:STEP, got {item!r}")
    return values
