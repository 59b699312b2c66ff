"""The resumable progress of a sharded synthesis run: ``<output>.parts/`` holds the run's settings
(``settings.json``) and one ``part-<rank>.jsonl`` per process, a line per finished image, flushed
per batch. Batches are fixed by the dataset order and the batch size, whatever the number of
processes, so a resumed run gives the same result as an uninterrupted one."""
import json
import logging
import os
from typing import Dict, List

from .outputs import check_output_path, write_json_atomic

logger = logging.getLogger(__name__)
SETTINGS_FILE = "settings.json"


def parts_dir(output: str) -> str:
    """The progress folder of the run that writes `output`."""
    return output + ".parts"


def prepare_parts(output: str, overwrite: bool, settings: Dict) -> None:
    """Before any work: refuse to replace `output`, and create (or check) the parts folder; a
    folder with finished images of other `settings` is a RuntimeError naming what changed."""
    check_output_path(output, overwrite)
    folder = parts_dir(output)
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        write_json_atomic(path, settings)
        return
    with open(path) as f:
        previous = json.load(f)
    changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
    if changed and not read_parts(folder):
        # A start that failed before finishing any image (e.g. a bad weights file): nothing to
        # keep, so the corrected command starts over instead of being refused.
        logger.info("%s holds no finished image of the earlier run (settings %s): starting over",
                    folder, ", ".join(changed))
        write_json_atomic(path, settings)
        return
    if changed:
        raise RuntimeError(f"{folder} holds the progress of a run with other settings ({', '.join(changed)}); "
                           "rerun with the same settings to resume it, or delete that folder to start over")
    logger.info("resuming the run in %s", folder)


def read_parts(folder: str) -> Dict[int, Dict]:
    """Image index -> its result line, from every part file (an unfinished last line is skipped)."""
    results = {}
    names = sorted(n for n in os.listdir(folder) if n.startswith("part-") and n.endswith(".jsonl"))
    for name in names:
        with open(os.path.join(folder, name)) as f:
            for line in f:
                try:
                    result = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("%s: skipping an unfinished line (its image is redone)", name)
                    continue
                results[int(result["index"])] = result
    return results


def open_part_file(folder: str, rank: int):
    """This process's part file, opened for appending after cutting any unfinished last line."""
    path = os.path.join(folder, f"part-{rank:03d}.jsonl")
    if os.path.exists(path):
        with open(path, "rb+") as f:
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
    return open(path, "a")


def rank_batches(num_images: int, batch_size: int, rank: int, world_size: int) -> List[List[int]]:
    """Global batch g = images [g * B, (g + 1) * B) of the dataset order, run by process g % world."""
    starts = range(0, num_images, batch_size)
    return [list(range(s, min(s + batch_size, num_images)))
            for g, s in enumerate(starts) if g % world_size == rank]


def write_result_lines(part, lines: List[Dict]) -> None:
    """Append one batch's result lines to an open part file and make them durable."""
    for line in lines:
        part.write(json.dumps(line, separators=(",", ":")) + "\n")
    part.flush()
    os.fsync(part.fileno())
