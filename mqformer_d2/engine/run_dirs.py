"""Run and evaluation folders claimed atomically: no two processes ever write the same one.

A new time-stamped folder is claimed by creating it with `os.mkdir` (which fails when it exists,
atomically, also between processes). A folder the user names (new, or existing and empty) is
claimed by creating the marker file `CLAIM_MARKER` in it exclusively (`open(..., "x")`). A
training run holds `TrainingDirLock` on its OUTPUT_DIR (new or resumed) while it runs.
"""
import fcntl
import itertools
import os
import socket
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


# Held by a training run in its OUTPUT_DIR (an advisory `fcntl.flock`, which the kernel releases
# when the process ends, so a killed run leaves no lock behind); the file names the holder.
TRAINING_LOCK = ".training.lock"


class TrainingDirLock:
    """Exclusive use of a training OUTPUT_DIR by one process: two trainings (new or resumed) in
    one folder would interleave their logs, metrics and checkpoints.

    Use as `with TrainingDirLock(output_dir): ...`; `acquire` raises FileExistsError naming the
    folder and the running holder (pid, host, start time) when another process holds it."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, TRAINING_LOCK)
        self._file = None

    def acquire(self) -> "TrainingDirLock":
        os.makedirs(self.output_dir, exist_ok=True)
        while self._file is None:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise FileExistsError(
                    f"OUTPUT_DIR {self.output_dir} is in use by another training run ({holder}; lock file "
                    f"{self.path}): wait for it to end, or choose another OUTPUT_DIR") from None
            if _same_file(handle, self.path):
                self._file = handle
            else:  # the previous holder removed the file between our open and flock: retry
                handle.close()
        self._file.truncate(0)
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()}, since {since}\n")
        self._file.flush()
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding it, so nobody locks a file about to vanish)."""
        if self._file is None:
            return
        try:
            os.remove(self.path)
        except OSError:  # the folder was removed or replaced meanwhile: nothing left to unlock
            pass
        self._file.close()
        self._file = None

    def __enter__(self) -> "TrainingDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(handle, path: str) -> bool:
    """Whether the open `handle` is still the file at `path`."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False
