"""Resuming a run: the newest intact checkpoint, and the run's config.yaml kept as it was.

detectron2 resumes from the file named in OUTPUT_DIR/last_checkpoint and fails when that file was
truncated (a kill during saving, a full disk) or deleted; and `default_setup` rewrites
OUTPUT_DIR/config.yaml with the resumed command's config. Here a broken last checkpoint is
skipped with a warning for the newest intact one, and the resumed config is written beside the
original as config.resume-<n>.yaml.
"""
import logging
import os
import zipfile
from typing import Callable, List, Optional

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"


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


def _checkpoints_newest_first(save_dir: str) -> List[str]:
    names = [n for n in os.listdir(save_dir) if n.endswith(".pth")]
    paths = [os.path.join(save_dir, n) for n in names]
    return sorted(paths, key=lambda p: (os.path.getmtime(p), os.path.basename(p)), reverse=True)


def resume_checkpoint(save_dir: str) -> Optional[str]:
    """The checkpoint to resume the run in `save_dir` from: the file named by its last_checkpoint
    when intact, else the newest intact `.pth` (with a warning naming the broken one); None when
    the folder holds no last_checkpoint. FileNotFoundError when no checkpoint is intact."""
    tag = os.path.join(save_dir, "last_checkpoint")
    if not os.path.isfile(tag):
        return None
    with open(tag) as f:
        named = os.path.join(save_dir, f.read().strip())
    if is_intact_checkpoint(named):
        return named
    for path in _checkpoints_newest_first(save_dir):
        if path != named and is_intact_checkpoint(path):
            logger.warning("--resume: %s (named in %s) is %s; resuming from %s, the newest intact "
                           "checkpoint", named, tag, "truncated" if os.path.exists(named) else "missing", path)
            return path
    raise FileNotFoundError(f"--resume: {tag} names {named}, which is truncated or missing, and "
                            f"{save_dir} holds no other intact checkpoint (model_*.pth)")


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
