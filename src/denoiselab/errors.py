"""The one base of every error that means bad input (a recipe key, a file, an option, a run
folder): the command line prints its message in one line and exits with status 2, and needs
only this light module to recognise it."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user; the message names the key, flag or file and what was expected."""
