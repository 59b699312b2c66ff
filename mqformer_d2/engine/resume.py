"""Resuming a run: the newest intact checkpoint, and the run's config.yaml kept as it was.

detectron2 resumes from the file named in OUTPUT_DIR/last_checkpoint and fails when that file was
truncated (a kill during saving, a full disk) or deleted; and `default_setup` rewrites
OUTPUT_DIR/config.yaml with the resumed command's config. Here a broken or missing last
checkpoint is skipped with a warning for the newest intact one, and the resumed config is written
beside the original as config.resume-<n>.yaml.
"""
import fnmatch
import logging
import os
import zipfile
from typing import Callable, List, Optional

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
# detectron2's checkpoint names: model_0000999.pth, model_final.pth
CHECKPOINT_PATTERN = "model_*.pth"


def is_intact_checkpoint(path: str) -> bool:
    """Whether `path` is a complete `torch.save` file: a zip archive whose central directory (at
    its end, so lost by truncation) is readable and lists a pickle."""
    if not os.path.isfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def run_checkpoints(save_dir: str) -> List[str]:
    """The names of the files in `save_dir` that belong to a training run's checkpoints:
    last_checkpoint and model_*.pth (sorted; [] when the folder does not exist)."""
    if not os.path.isdir(save_dir):
        return []
    return sorted(n for n in os.listdir(save_dir)
                  if n == "last_checkpoint" or fnmatch.fnmatch(n, CHECKPOINT_PATTERN))


def _checkpoints_newest_first(save_dir: str) -> List[str]:
    paths = [os.path.join(save_dir, n) for n in run_checkpoints(save_dir) if n != "last_checkpoint"]
    return sorted(paths, key=lambda p: (os.path.getmtime(p), os.path.basename(p)), reverse=True)


def _newest_intact(save_dir: str, skip: str = "") -> Optional[str]:
    return next((p for p in _checkpoints_newest_first(save_dir) if p != skip and is_intact_checkpoint(p)), None)


def resume_checkpoint(save_dir: str) -> Optional[str]:
    """The checkpoint to resume the run in `save_dir` from: the file named by its last_checkpoint
    when intact, else the newest intact model_*.pth (with a warning naming the broken or missing
    one); None when the folder holds neither last_checkpoint nor model_*.pth. FileNotFoundError
    when none of its checkpoints is intact."""
    tag = os.path.join(save_dir, "last_checkpoint")
    if not os.path.isfile(tag):
        return _resume_without_tag(save_dir, tag)
    with open(tag) as f:
        named = os.path.join(save_dir, f.read().strip())
    if is_intact_checkpoint(named):
        return named
    path = _newest_intact(save_dir, skip=named)
    if path is not None:
        logger.warning("--resume: %s (named in %s) is %s; resuming from %s, the newest intact "
                       "checkpoint", named, tag, "truncated" if os.path.exists(named) else "missing", path)
        return path
    raise FileNotFoundError(f"--resume: {tag} names {named}, which is truncated or missing, and "
                            f"{save_dir} holds no other intact checkpoint ({CHECKPOINT_PATTERN})")


def _resume_without_tag(save_dir: str, tag: str) -> Optional[str]:
    """A folder with checkpoints but no last_checkpoint (deleted, or never written because the
    first save was interrupted): its newest intact checkpoint, with a warning."""
    if not _checkpoints_newest_first(save_dir):
        return None
    path = _newest_intact(save_dir)
    if path is None:
        raise FileNotFoundError(f"--resume: {save_dir} has no {os.path.basename(tag)} and none of its "
                                f"checkpoints ({CHECKPOINT_PATTERN}) is intact; nothing to resume from")
    logger.warning("--resume: %s is missing; resuming from %s, the newest intact checkpoint of %s",
                   tag, path, save_dir)
    return path


def keep_run_config(output_dir: str, write_config: Callable[[], None]) -> Optional[str]:
    """Call `write_config()` (which writes output_dir/config.yaml, e.g. detectron2's
    `default_setup`) without losing the config.yaml already there: the new one is moved to
    config.resume-<n>.yaml (first free n >= 1) and the original put back. The original is only
    ever renamed, never rewritten, so an interruption leaves it as config.yaml.original.
    Returns the path of the resumed config, or None when there was no config.yaml to keep."""
    current = os.path.join(output_dir, CONFIG_FILE)
    if not os.path.isfile(current):
        write_config()
        return None
    original = current + ".original"
    os.replace(current, original)
    try:
        write_config()
    finally:
        resumed = _claim_resume_config_name(output_dir)
        if os.path.isfile(current):
            os.replace(current, resumed)
        os.replace(original, current)
    logger.info("--resume: the run's %s is kept; this command's config is %s", current, resumed)
    return resumed


def _claim_resume_config_name(output_dir: str) -> str:
    number = 1
    while True:
        path = os.path.join(output_dir, f"config.resume-{number}.yaml")
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            number += 1
