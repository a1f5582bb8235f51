"""Argument types shared by the command-line front ends (comma-separated lists, ...)."""

from __future__ import annotations

import argparse

__all__ = ["floats", "ints", "words"]


def floats(text: str) -> tuple:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def ints(text: str) -> tuple:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def words(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip())
