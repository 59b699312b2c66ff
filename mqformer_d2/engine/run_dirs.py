"""Run and evaluation folders claimed atomically: no two processes ever write the same one.

A new time-stamped folder is claimed by creating it with `os.mkdir` (which fails when it exists,
atomically, also between processes). A folder the user names (new, or existing and empty) is
claimed by creating the marker file `CLAIM_MARKER` in it exclusively (`open(..., "x")`).
"""
import itertools
import os
import time

CLAIM_MARKER = ".claimed_by_run"


def claim_dir(path: str, what: str = "--output-dir") -> str:
    """Create `path` (and its parents) for this process alone and return it.

    Raises FileExistsError naming `what` and `path` when the folder holds files or another process
    claimed it first."""
    os.makedirs(path, exist_ok=True)
    refused = FileExistsError(f"{what} {path} already holds files; choose a new folder "
                              "(a run never overwrites an earlier one)")
    if os.listdir(path):
        raise refused
    try:
        with open(os.path.join(path, CLAIM_MARKER), "x"):
            pass
    except FileExistsError:
        raise refused from None
    return path


def claim_timestamped_dir(parent: str, prefix: str) -> str:
    """A new folder `parent/<prefix><YYYYmmdd_HHMMSS>`, with `_2`, `_3`, ... appended when another
    process took that name (e.g. started in the same second). Returns its path."""
    os.makedirs(parent, exist_ok=True)
    stamp = prefix + time.strftime("%Y%m%d_%H%M%S")
    for number in itertools.count(1):
        path = os.path.join(parent, stamp if number == 1 else f"{stamp}_{number}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
