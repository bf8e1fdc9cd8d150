"""The typer app and what every command shares: options, input-size parsing, usage errors."""

from __future__ import annotations

import contextlib
import inspect
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cnnlab.deployment.select import BACKENDS
from cnnlab.errors import UserError
from cnnlab.measure.allocator import retain_freed_memory

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="cnnlab: CNN architectures with exact complexity. FLOPs are not speed.",
)


MALLOC_MODES = ("retain", "system")


def _flags_show_no_placeholder() -> None:
    """A flag takes no value, so its help row shows no ``<bool>`` placeholder.

    Typer's rich help asks every option for its type label, flags included (``--json <bool>``),
    which reads as an option taking a value (``--json true``). Typers without the method have
    no such label.
    """
    option = getattr(typer.core, "TyperOption", None)
    labelled = getattr(option, "display_type_rich", None)
    if labelled is None or getattr(labelled, "cnnlab_flags_unlabelled", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag and not self.count else labelled(self, ctx)

    display_type_rich.cnnlab_flags_unlabelled = True
    option.display_type_rich = display_type_rich


_flags_show_no_placeholder()


def _unwrapped(doc: str) -> str:
    """A docstring's paragraphs each on one line, so help rewraps them to the terminal: typer
    keeps the hard line breaks of every paragraph after the first, breaking lines mid-sentence."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


def unwrap_help(typer_app: typer.Typer) -> None:
    """Give every command of ``typer_app`` (sub-apps included) its docstring, unwrapped, as help."""
    for info in typer_app.registered_commands:
        doc = info.help or (info.callback and info.callback.__doc__)
        if doc:
            info.help = _unwrapped(doc)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            unwrap_help(group.typer_instance)


@app.callback()
def main_options(
    malloc: Annotated[
        str,
        typer.Option(
            "--malloc",
            help="retain: glibc keeps freed memory, so eager inference does not page-fault its "
            "buffers back in on every call (what jemalloc/TCMalloc do; the default); "
            "system: the C library's own behaviour",
        ),
    ] = "retain",
) -> None:
    """cnnlab: CNN architectures with exact complexity. FLOPs are not speed."""
    if malloc not in MALLOC_MODES:
        raise UsageError(f"--malloc must be retain or system, got {malloc!r}")
    if malloc == "retain":
        retain_freed_memory()


def console() -> Console:
    """A console as wide as the terminal; wide enough for whole tables when output is piped."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


InputSize = Annotated[
    str | None,
    typer.Option("--input-size", help="CxHxW (e.g. 3x224x224) or one side S for (3, S, S)"),
]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="images per forward pass")]
Threads = Annotated[
    int | None, typer.Option("--threads", help="intra-op threads (default: torch's current count)")
]
Device = Annotated[str, typer.Option("--device", help="cpu or cuda")]


def backend_option(purpose: str):
    """The one ``--backend`` option, its choices read from the backend table (the library
    refuses an unknown name); ``purpose`` says what the command does with it."""
    return Annotated[
        str | None,
        typer.Option("--backend", help=f"{purpose}; one of {', '.join(BACKENDS)}"),
    ]


Backend = backend_option(
    "deploy backend (the CUDA graphs on a GPU, the runtimes on the CPU; auto measures the "
    "candidates and keeps the fastest); without it, the command's own default"
)


def settings_line(s) -> str:
    """A measurement's settings (a LatencySettings) in one line, printed beside its figures."""
    return (
        f"{s.device}, {s.threads} thread(s), batch {s.batch_size}, backend {s.backend}, "
        f"{s.dtype}, {s.mode}, malloc {s.malloc}"
    )


class UsageError(UserError):
    """Bad input from the command line: reported in one line, exit status 2."""


def parse_input_size(text: str | None) -> tuple[int, int, int] | None:
    """Parse "3x224x224" or "224"; None keeps each model's registered input size."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = [3, values[0], values[0]]
    if len(values) != 3 or min(values) < 1:
        raise UsageError(
            f"--input-size must be CxHxW like 3x224x224 or one side like 224, got {text!r}"
        )
    return (values[0], values[1], values[2])


def _unwritable(folder: Path) -> str | None:
    """Why no file can be written in ``folder``, or None when one can. A folder made to find
    out is removed again: a command refused later leaves nothing behind."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file"
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    probe = folder / f".cnnlab-write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as e:
        return e.strerror or str(e)
    finally:
        for made in missing:  # innermost first; only folders this check made, still empty
            with contextlib.suppress(OSError):
                made.rmdir()
    return None


def writable_folder(path: Path, option: str = "--out") -> Path:
    """Check that a file can be written in ``path`` (made when results are written), before any work.

    A run that measures for minutes must not end in a traceback because its output folder was
    a file, read-only or out of reach.
    """
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; give a folder (it is made if missing)")
    reason = _unwritable(path)
    if reason:
        raise UsageError(
            f"{option} {path}: cannot write there ({reason}); choose a folder you can write to"
        )
    return path


def writable_file(path: Path, option: str = "--out") -> Path:
    """Check that ``path`` can be written (its folder is made if needed) and is not a folder."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name such as {path}/table.json")
    reason = _unwritable(path.parent)
    if reason:
        raise UsageError(
            f"{option} {path}: cannot write there ({reason}); choose a path you can write to"
        )
    return path
