"""Argument types shared by the command-line front ends (comma-separated lists, ...)."""

from __future__ import annotations

import argparse

__all__ = ["DefaultsHelpFormatter", "floats", "ints", "words"]


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


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every default shown, except where the help text already says it or the
    default is ``None`` (an option whose default comes from elsewhere, e.g. a preset, and whose
    help text says so)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)
