"""``rnnbench`` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 a check failed or a run ended in ``error``, 2 bad input (one line on
stderr, nothing written). A diverged run is data: exit 0.

* ``parser``: the argument parser, one function per command
* ``commands``: the handlers
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from rnnbench.errors import RnnbenchError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from rnnbench.cli.parser import build_parser as build

    return build()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    on_main = threading.current_thread() is threading.main_thread()
    # SIGTERM (timeout, Slurm, kill) takes the same path as Ctrl-C: queued runs are cancelled,
    # workers stopped, and everything finished so far stays in the store. The caller's
    # handler (main called in-process: a notebook, a test) is put back afterwards.
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main else None
    try:
        return _handle(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _handle(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args))
    except RnnbenchError as exc:
        print(f"rnnbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rnnbench results ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("\nrnnbench: interrupted; finished runs are saved, re-run to resume", file=sys.stderr)
        return 130
