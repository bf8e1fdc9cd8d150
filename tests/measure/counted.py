"""Count the calls of library functions wherever cnnlab bound them (``from x import f`` too)."""

from __future__ import annotations

import collections
import functools
import sys


def count_calls(monkeypatch, *functions) -> collections.Counter:
    """Patch every binding of each function in every loaded cnnlab module with a counting
    wrapper; the returned counter maps each function's name to its calls so far."""
    calls: collections.Counter = collections.Counter()
    for f in functions:

        @functools.wraps(f)
        def counted(*args, _f=f, **kwargs):
            calls[_f.__name__] += 1
            return _f(*args, **kwargs)

        for name, module in list(sys.modules.items()):
            if name == "cnnlab" or name.startswith("cnnlab."):
                for attr, value in list(vars(module).items()):
                    if value is f:
                        monkeypatch.setattr(module, attr, counted)
    return calls
