"""The errors of bad input, shared by every package (the lowest layer defines them once). Their class decides the
exit code of the command line, for every verb alike:

* :class:`UsageError` (exit code **2**, "nothing was run"): what the user wrote to tell playmill what to do is
  wrong — the command line, the pipeline config, a ``--set``, an import mapping or settings file, a path option
  that does not exist or is not allowed. :class:`capture.settings.ConfigError` (a config naming every bad key) is
  one.
* :class:`InputError` (exit code **1**): the data being processed cannot be used — a video, a CSV, a recording,
  an ``.npz``, a shard, a manifest, a checkpoint — or does not fit what the settings ask of it. The message names
  the input (file, key, row or column), says what is wrong and, where it helps, what was expected.

Both are ``ValueError``s, so code that catches ``ValueError`` keeps working. An item of a batch that fails (one
episode of an import, one recording) is quarantined with its reason and the batch goes on; its verb exits 1 too.
"""

from __future__ import annotations

__all__ = ["InputError", "UsageError"]


class InputError(ValueError):
    """Input that cannot be used: data that is unusable or does not fit (exit code 1), or, as a
    :class:`UsageError`, a command line or config that is wrong (exit code 2). The message names the input and
    the problem."""


class UsageError(InputError):
    """What the user wrote is wrong (a flag, a key, a mapping file, a path that does not exist): exit code 2, and
    nothing was run. The message names the option, key or file and what to do."""
