"""Generation of the whole benchmark: which splits exist, how big they are, and the cache.

The benchmark is a pure function of ``ShapesBenchmarkConfig``: every image draws from its own random
generator seeded by (seed, split, image index), so output bytes do not depend on the order of work.
It is written into a temporary folder beside the target and renamed into place once complete, with
``manifest.json`` (the config and ``GENERATOR_VERSION``) written last; a folder whose manifest
matches is reused as is. The generating process holds a lock (`fcntl.flock`, released by the kernel
when the process dies) in its temporary folder, so the temporary folders of killed generations
are told from running ones and removed by the next call.
"""
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
from tqdm import tqdm

from .layout import SPLITS, Layout, default_root
from .scene import SceneSpec, random_salient_scene, random_scene
from .vocabulary import SUITE, seen_combos
from .writer import DetectionWriter, ForegroundWriter, FullSceneWriter, SeginwWriter

logger = logging.getLogger(__name__)

#: Bump whenever a change to the code changes the generated files: cached copies then regenerate.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class ShapesBenchmarkConfig:
    """Everything the generated files depend on (besides the code version)."""

    seed: int = 0
    image_size: int = 128
    train_images: int = 2000
    val_images: int = 200
    detection_train_images: int = 500
    detection_val_images: int = 100
    foreground_train_images: int = 500
    foreground_val_images: int = 100
    seginw_train_images: int = 50  # per suite dataset
    seginw_val_images: int = 50  # per suite dataset
    max_sentences: int = 3  # per referred object

    def manifest(self) -> dict:
        return {"benchmark": "mqformer_shapes", "generator_version": GENERATOR_VERSION,
                "config": dataclasses.asdict(self)}


@dataclass
class _SplitJob:
    """``count`` scenes drawn by ``make_scene(rng, spec)`` and written by ``writer``."""

    key: str  # stable name, part of every image's seed
    count: int
    make_scene: Callable
    spec: SceneSpec
    writer: object


def _split_jobs(config: ShapesBenchmarkConfig, layout: Layout) -> List[_SplitJob]:
    size = config.image_size
    seen = SceneSpec(image_size=size, combos=tuple(seen_combos()))
    full_counts = {"train": config.train_images, "val": config.val_images}
    detection_counts = {"train": config.detection_train_images, "val": config.detection_val_images}
    foreground_counts = {"train": config.foreground_train_images,
                         "val": config.foreground_val_images}
    suite_counts = {"train": config.seginw_train_images, "val": config.seginw_val_images}
    jobs = []
    for split in SPLITS:
        jobs += [
            _SplitJob(f"full_{split}", full_counts[split], random_scene, seen,
                      FullSceneWriter(layout, split, size, config.max_sentences)),
            _SplitJob(f"detection_{split}", detection_counts[split], random_scene, seen,
                      DetectionWriter(layout, split, size)),
            _SplitJob(f"foreground_{split}", foreground_counts[split], random_salient_scene, seen,
                      ForegroundWriter(layout, split)),
        ]
        for dataset in SUITE:
            spec = dataclasses.replace(seen, combos=dataset.combos)
            jobs.append(_SplitJob(f"seginw_{dataset.name}_{split}", suite_counts[split],
                                  random_scene, spec, SeginwWriter(layout, dataset, split, size)))
    return jobs


# The jobs of the generation in progress, for worker processes (inherited through fork).
_ACTIVE_JOBS: List[_SplitJob] = []
_ACTIVE_SEED = 0


def _write_one_image(job_index: int, index: int) -> dict:
    """Draw and write image ``index`` of job ``job_index``; returns its json records."""
    job = _ACTIVE_JOBS[job_index]
    rng = np.random.default_rng([_ACTIVE_SEED, zlib.crc32(job.key.encode("utf-8")), index])
    return job.writer.write_image(index + 1, job.make_scene(rng, job.spec), rng)


def default_workers() -> int:
    """Processes used for generation: the CPUs this process may use, at most 4."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def write_benchmark(base: str, config: ShapesBenchmarkConfig, workers: int = 1) -> None:
    """Write every split of the benchmark into the (empty or new) folder ``base``, manifest last.
    The files do not depend on ``workers`` (each image has its own random generator)."""
    global _ACTIVE_JOBS, _ACTIVE_SEED
    layout = Layout(base)
    _ACTIVE_JOBS, _ACTIVE_SEED = _split_jobs(config, layout), config.seed
    use_pool = workers > 1 and "fork" in multiprocessing.get_all_start_methods()
    pool = multiprocessing.get_context("fork").Pool(workers) if use_pool else None
    try:
        with tqdm(total=sum(job.count for job in _ACTIVE_JOBS), desc="mqformer_shapes",
                  unit="img") as bar:
            for job_index, job in enumerate(_ACTIVE_JOBS):
                work = functools.partial(_write_one_image, job_index)
                records = (pool.imap(work, range(job.count), chunksize=8) if pool
                           else map(work, range(job.count)))
                for record in records:
                    job.writer.collect(record)
                    bar.update()
                job.writer.finish()
    finally:
        if pool:
            pool.close()
            pool.join()
        _ACTIVE_JOBS = []
    with open(layout.manifest, "w", encoding="utf-8") as f:
        json.dump(config.manifest(), f, indent=2, sort_keys=True)


def read_manifest(base: str) -> Optional[dict]:
    """The manifest of the benchmark folder ``base``, None when the folder or manifest is absent."""
    path = Layout(base).manifest
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"mqformer_shapes: cannot read the manifest {path}: {e}") from e


def _move_aside(base: str, manifest: dict) -> str:
    """Rename an outdated benchmark folder (never delete: it may hold the user's own files)."""
    digest = hashlib.sha1(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:8]
    target, suffix = f"{base}.previous-{digest}", 1
    while os.path.exists(target):
        target, suffix = f"{base}.previous-{digest}-{suffix}", suffix + 1
    os.rename(base, target)
    logger.warning("mqformer_shapes: generation parameters changed; the old copy was moved to %s "
                   "(delete it when no longer needed)", target)
    return target


def _install(temp: str, base: str, expected: dict) -> None:
    """Rename the complete ``temp`` folder to ``base``, moving an outdated ``base`` aside. If
    another process installed a matching copy meanwhile, keep that one and drop ``temp``."""
    current = read_manifest(base)
    if current == expected:
        shutil.rmtree(temp)
        return
    if os.path.exists(base):
        if current is None:
            raise FileExistsError(
                f"mqformer_shapes: {base} exists but has no manifest.json, so it was not generated "
                f"by this code; move it away or point DETECTRON2_DATASETS elsewhere")
        _move_aside(base, current)
    os.rename(temp, base)


PARTIAL_PREFIX = ".mqformer_shapes.partial-"
GENERATING_LOCK = ".generating"  # in a temporary folder: flocked by the process writing it
# A temporary folder without its lock file (killed before creating it, or written by an earlier
# version of this code) counts as abandoned once this old.
ABANDONED_AFTER_SECONDS = 3600


def remove_abandoned_partials(root: str) -> List[str]:
    """Remove the temporary folders of generations that were killed (no live process holds their
    lock); return their paths. Running generations' folders are left alone."""
    removed = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name)
        if name.startswith(PARTIAL_PREFIX) and os.path.isdir(path) and _remove_if_abandoned(path):
            removed.append(path)
            logger.info("mqformer_shapes: removed %s, left by a generation that did not finish", path)
    return removed


def _remove_if_abandoned(path: str) -> bool:
    try:
        handle = open(os.path.join(path, GENERATING_LOCK))
    except FileNotFoundError:
        if time.time() - os.path.getmtime(path) < ABANDONED_AFTER_SECONDS:
            return False  # maybe a generation that has not created its lock yet
        shutil.rmtree(path, ignore_errors=True)
        return True
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its process is still writing it
        shutil.rmtree(path, ignore_errors=True)  # under the lock: nobody else removes it meanwhile
        return True


def ensure_benchmark(root: Optional[str] = None, config: Optional[ShapesBenchmarkConfig] = None,
                     workers: Optional[int] = None) -> str:
    """Return ``<root>/mqformer_shapes``, generating it first (with ``workers`` processes, default
    ``default_workers()``) unless a copy with the same parameters is already there. ``root``
    defaults to ``$DETECTRON2_DATASETS`` (else ``datasets``). Temporary folders of killed
    generations under ``root`` are removed first (`remove_abandoned_partials`)."""
    root = os.path.abspath(root or default_root())
    config = config or ShapesBenchmarkConfig()
    base = Layout.under_root(root).base
    expected = config.manifest()
    remove_abandoned_partials(root)
    if read_manifest(base) == expected:
        return base
    os.makedirs(root, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=root)
    os.chmod(temp, 0o755)  # mkdtemp makes it private; the installed benchmark should not be
    logger.info("mqformer_shapes: generating %s (seed %d) ...", base, config.seed)
    start = time.perf_counter()
    try:
        with open(os.path.join(temp, GENERATING_LOCK), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_benchmark(temp, config, workers or default_workers())
            os.remove(lock.name)  # not part of the benchmark
        _install(temp, base, expected)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    logger.info("mqformer_shapes: generated in %.1f s", time.perf_counter() - start)
    return base


def generate_shapes_benchmark(root: Optional[str] = None, seed: int = 0,
                              workers: Optional[int] = None, **sizes) -> str:
    """Generate (or reuse) the benchmark under ``<root>/mqformer_shapes`` and return that path.

    ``sizes``: any other ``ShapesBenchmarkConfig`` field, e.g. ``train_images=100``.
    """
    return ensure_benchmark(root, ShapesBenchmarkConfig(seed=seed, **sizes), workers)
