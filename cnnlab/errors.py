"""The errors cnnlab raises for bad input: what was wrong, the value, and how to fix it.

Each subclasses the builtin a caller would expect (``ValueError``, ``TypeError``), so existing
``except ValueError`` code keeps working, and the command line can tell a user's mistake (one
line, exit status 2) from a bug in cnnlab (a traceback). This module imports nothing of cnnlab,
so every layer can raise them.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the caller: the message says what, the value, and how to fix it."""


class BadValue(UserError, ValueError):
    """An argument of the right type with a value cnnlab cannot use."""


class BadType(UserError, TypeError):
    """An argument of the wrong type, or an option the callee does not take."""
