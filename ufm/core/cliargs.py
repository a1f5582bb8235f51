"""What the system subcommands of the command line share: argument types (comma-separated lists,
bounded integers), the options every preset runner has (``--out``, ``--extend``, ``--no-figures``,
``--quiet``, ``--list``, ``--devices``), one-line checks that name the flag, and the ``--help``
formatter that shows every default.

A ``SpecError`` (or any ``ValueError``/``OSError``) raised by a command function becomes a one-line
``ufm: error: ...`` with exit code 2 (``ufm/cli/main.py``); argparse types raise
``argparse.ArgumentTypeError``, which argparse reports naming the option.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from .validation import SpecError, check_int

__all__ = [
    "DefaultsHelpFormatter",
    "add_deprecated_alias",
    "add_list_option",
    "add_output_options",
    "check_positive_flags",
    "floats",
    "int_at_least",
    "ints",
    "available_cores",
    "set_cpu_devices",
    "words",
]


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


def int_at_least(minimum: int):
    """An argparse type: an integer ``>= minimum`` (argparse names the option on error).

    >>> int_at_least(1)("3")
    3
    """

    def parse(text):
        try:
            return check_int("value", int(text), minimum)
        except (ValueError, SpecError):
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None

    return parse


def add_output_options(
    p: argparse.ArgumentParser,
    *,
    out_help: str,
    extend_help: str = "allow adding these settings to a folder that holds other results",
    figures: bool = True,
    quiet: bool = True,
) -> None:
    """The results-folder options of a preset runner: ``--out`` (help ``out_help``, which names
    the default folder), ``--extend``, ``--no-figures`` (if ``figures``) and ``--quiet`` (if
    ``quiet``)."""
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--extend", action="store_true", help=extend_help)
    if figures:
        p.add_argument("--no-figures", action="store_true", help="skip the figures")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_list_option(p: argparse.ArgumentParser, what: str = "the presets") -> None:
    """``--list``: print ``what`` and exit (the command checks ``args.list`` first)."""
    p.add_argument("--list", action="store_true", help=f"list {what}, then exit")


def check_positive_flags(args, *names: str) -> None:
    """Refuse a parsed option that is not a finite number > 0, naming its flag (``--acc-drop``
    for the attribute ``acc_drop``): ``SpecError``, one line."""
    for name in names:
        v = getattr(args, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise SpecError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v!r}")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a Slurm task's share, not the whole
    node), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def set_cpu_devices(devices: int | None, flag: str = "--devices") -> None:
    """Ask JAX for ``devices`` CPU devices (fake ones, one per core; no effect on GPU/TPU runs).

    ``None`` leaves the default. Refuses ``devices < 1`` with a ``SpecError`` naming ``flag``.
    Once JAX's backends have started (in-process use) the setting cannot change and what exists
    is kept.
    """
    if devices is None:
        return
    if devices < 1:
        raise SpecError(f"{flag} must be >= 1, got {devices}")
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", devices)
    except RuntimeError:  # backends already started: keep what exists
        pass


class _DeprecatedAlias(argparse.Action):
    """Stores like the canonical option and says on stderr that the alias is deprecated."""

    def __init__(self, option_strings, dest, canonical: str = "", **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.canonical = canonical

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"ufm: warning: {option_string} is deprecated; use {self.canonical}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(p: argparse.ArgumentParser, alias: str, canonical: str, dest: str):
    """``alias`` (e.g. ``--data``) as a hidden, deprecated spelling of the option ``canonical``
    (e.g. ``--data-dir``) that stores into ``dest``: not shown by ``--help``, still accepted, with
    a one-line warning on stderr.

    >>> p = argparse.ArgumentParser()
    >>> _ = p.add_argument("--data-dir", dest="data_dir")
    >>> add_deprecated_alias(p, "--data", "--data-dir", "data_dir")
    >>> p.parse_args(["--data", "x"]).data_dir  # and a warning on stderr
    'x'
    """
    p.add_argument(
        alias,
        dest=dest,
        action=_DeprecatedAlias,
        canonical=canonical,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
