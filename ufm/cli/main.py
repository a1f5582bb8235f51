"""Command-line interface: the registered systems' subcommands (``ufm landscape``, ...) and
``ufm sweep ...``.

Bad options exit with status 2 and a one-line ``ufm: error: ...`` message naming the option. JAX's
persistent compilation cache is switched on (:mod:`ufm.core.cache`; ``UFM_COMPILATION_CACHE=off``
turns it off).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from .. import systems  # noqa: F401  (registers every system and its subcommand)
from .._version import __version__
from ..core.cache import enable_compilation_cache
from ..core.interrupts import install_stop_handlers, raise_if_stop_requested
from ..core.registry import registered_systems
from ..core.validation import SpecError
from .sweep import add_sweep_parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors; negative numbers in scientific notation (``-1e-3``) are
    values, not options."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message):
        self.exit(2, f"ufm: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ufm", description="Unconstrained feature models and representation collapse."
    )
    parser.add_argument("--version", action="version", version=f"ufm {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for system in registered_systems().values():
        if system.add_cli is not None:
            system.add_cli(sub)
    add_sweep_parser(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ufm`` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    enable_compilation_cache()
    install_stop_handlers()  # a scheduler's SIGTERM stops like Ctrl-C; neither is ever swallowed
    try:
        rc = int(args.func(args) or 0)
        raise_if_stop_requested()  # a Ctrl-C swallowed after the last chunk still exits 130
        return rc
    except (SpecError, ValueError, OSError) as e:
        print(f"ufm: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Every finished chunk is on disk (atomic writes); the chunk in flight is simply redone.
        # Leave at once: unwinding JAX's runtime threads at interpreter exit can crash (SIGSEGV).
        print(
            "\nufm: interrupted; the results folder is consistent: run the same command to resume",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def run() -> None:
    """The ``ufm`` console script and ``python -m ufm``: :func:`main`, then leave without
    tearing the interpreter down. Module teardown after JAX and matplotlib costs 1-2 s of every
    run (measured: 0.5 s after ``import jax`` alone) and does nothing a command needs: every
    result is already written (atomic, synchronous writes), the output streams are flushed and the
    ``atexit`` handlers (``jax.distributed`` shutdown among them) are run first."""
    import atexit

    rc = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        atexit._run_exitfuncs()
        os._exit(rc)


def _one_line(err) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
