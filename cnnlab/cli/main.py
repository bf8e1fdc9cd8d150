"""The ``cnnlab`` command: parses, calls the library, prints. No logic of its own.

Each command lives in its own module and registers itself on the shared typer app on import.
"""

from __future__ import annotations

import os
import sys

import cnnlab.cli.guidelines  # noqa: F401  (registers guidelines and lint)
import cnnlab.cli.latency  # noqa: F401  (registers latency and deploy)
import cnnlab.cli.lut  # noqa: F401  (registers the lut sub-app)
import cnnlab.cli.speed  # noqa: F401  (registers breakdown and roofline)
import cnnlab.cli.train  # noqa: F401  (registers train and eval)
from cnnlab.cli import bench, zoo  # noqa: F401  (register their commands)
from cnnlab.cli.app import app, parse_input_size, unwrap_help
from cnnlab.errors import UserError

__all__ = ["app", "main", "parse_input_size"]

BUG_LINE = "cnnlab: internal error (a bug in cnnlab, not in your input); the traceback follows"
INTERRUPTED = 130  # the shell's status for a process stopped by SIGINT (128 + 2)

unwrap_help(app)  # every command registered above: its help rewraps to the terminal


def _reports() -> bool:
    """Whether this process prints a usage error: under torchrun (which sets RANK and LOCAL_RANK)
    only rank 0 does, so a bad option is said once, not once per worker; every rank exits 2."""
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))
    return rank.strip() in ("", "0") or not rank.strip().isdigit()


def _usage_error(message: str) -> int:
    if _reports():
        print(f"cnnlab: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input becomes one line on stderr and exit status 2, never a traceback;
    any other exception is a bug in cnnlab and keeps its traceback, with a line saying so."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result = app(args=args or ["--help"], prog_name="cnnlab", standalone_mode=False)
    except UserError as e:
        return _usage_error(str(e))
    except KeyboardInterrupt:
        result = INTERRUPTED
    except Exception as e:
        # typer's command-line errors (unknown option, missing argument) carry a message
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            return _usage_error(f"{e.format_message()} (see cnnlab --help)")
        print(BUG_LINE, file=sys.stderr)
        raise
    if result == INTERRUPTED:  # typer turns Ctrl-C inside a command into this exit status
        print("cnnlab: interrupted; files already written are complete", file=sys.stderr)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
