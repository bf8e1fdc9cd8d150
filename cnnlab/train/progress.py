"""The rich progress bar of a run (rank 0): loss, accuracy, learning rate, images/s."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    """One bar per epoch; a line per finished epoch. Disabled: does nothing."""

    def __init__(self, console: Console | None, enabled: bool):
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not enabled,
        )
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        desc = f"epoch {epoch + 1}/{epochs}"
        self.task = self.bar.add_task(desc, total=steps, completed=done, stats="")

    def update(self, st) -> None:
        if not self.enabled or not st.seen:
            return
        stats = (
            f"loss {st.loss_sum / st.seen:.4f}  acc {100 * st.correct / st.seen:.2f}%  "
            f"lr {st.lr:.4g}  {st.seen / max(st.seconds, 1e-9):.0f} img/s"
        )
        self.bar.update(self.task, advance=1, stats=stats)

    def end_epoch(self, row: dict) -> None:
        if not self.enabled:
            return
        val = row["val"]
        ema = f"  ema top-1 {row['val_ema']['top1']:.2f}%" if "val_ema" in row else ""
        self.console.print(
            f"epoch {row['epoch']}: train loss {row['train']['loss']:.4f} top-1 "
            f"{row['train']['top1']:.2f}%  val loss {val['loss']:.4f} top-1 {val['top1']:.2f}% "
            f"top-5 {val['top5']:.2f}%{ema}  lr {row['lr']:.4g}  "
            f"{row['images_per_s']:.0f} img/s"
        )
