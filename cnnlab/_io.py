"""Atomic file output: nothing half-written is ever left where a result is expected."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "xb") as f:  # created with the user's umask, unlike mkstemp's 0600
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_figure(fig, path: str | os.PathLike, **savefig) -> Path:
    """Render a matplotlib figure to PNG and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **{"dpi": 120, "bbox_inches": "tight", **savefig})
    return atomic_write(path, buf.getvalue())
