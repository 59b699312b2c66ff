"""The peer table: every matting method on the same validation images, scored by the matting
evaluator against the same ground-truth alphas and trimaps.

A method is a function ``case -> (H, W) alpha``; `evaluate_method` runs it over the cases and
returns the evaluator's means plus seconds per image. Learned methods are trained with several
seeds: `mean_over_seeds` averages their rows, and `format_table` prints mean (seed / seed).
"""
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..data.masks import decode_segmentation
from ..evaluation.matting import MattingEvaluator, ground_truth
from .files import read_rgb

TABLE_METRICS = ("SAD", "MSE", "Grad", "Conn", "SAD_whole", "MSE_whole", "Grad_whole", "Conn_whole")


@dataclass
class MattingCase:
    """One validation image: its record, RGB image, ground truth, the object's binary mask and
    the prompt naming it."""

    record: dict
    image: np.ndarray
    alpha: np.ndarray
    trimap: np.ndarray
    mask: np.ndarray
    prompt: str


def load_cases(records: Sequence[dict], limit: Optional[int] = None) -> List[MattingCase]:
    """Cases of matting-split records (each with one annotation holding ``texts``)."""
    cases = []
    for record in list(records)[:limit]:
        (annotation,) = record["annotations"]
        alpha, trimap = ground_truth(record)
        mask = decode_segmentation(annotation["segmentation"], record["height"], record["width"])
        cases.append(MattingCase(record, read_rgb(record["file_name"]), alpha, trimap,
                                 mask.astype(bool), annotation["texts"][0]))
    return cases


def evaluate_method(cases: Sequence[MattingCase], method: Callable[[MattingCase], np.ndarray],
                    dataset_name: str = "matting") -> Dict[str, float]:
    """The evaluator's mean metrics of ``method`` over ``cases``, plus ``seconds_per_image``."""
    evaluator = MattingEvaluator(dataset_name)
    evaluator.reset()
    start = time.perf_counter()
    for case in cases:
        evaluator.process([case.record], [{"alpha": method(case)}])
    seconds = (time.perf_counter() - start) / max(len(cases), 1)
    results = dict(evaluator.evaluate()["matting"])
    results["seconds_per_image"] = seconds
    return results


def mean_over_seeds(rows: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """Metric-wise mean of one method's rows (one per training seed)."""
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def _cell(values: Sequence[float], key: str) -> str:
    # MSE in thousandths, as papers print it; SAD, Grad and Conn are already in thousands, and
    # small on 128-pixel images, so they get four decimals
    scale, digits = (1000.0, 3) if key.startswith("MSE") else (1.0, 4)
    numbers = [v * scale for v in values]
    mean = f"{np.mean(numbers):.{digits}f}"
    return mean if len(numbers) == 1 else f"{mean} ({' / '.join(f'{n:.{digits}f}' for n in numbers)})"


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``rows``: dicts with ``method``, ``runs`` (one metrics dict per seed, or a
    single one) and optionally ``wrong_object`` (e.g. "3 / 100")."""
    header = ("| method | SAD | MSE (1e-3) | Grad | Conn | SAD whole | MSE whole (1e-3) | "
              "Grad whole | Conn whole | wrong object | s / image |")
    lines = [header, "|" + " --- |" * 11]
    for row in rows:
        runs = row["runs"]
        cells = [_cell([run[key] for run in runs], key) for key in TABLE_METRICS]
        seconds = np.mean([run["seconds_per_image"] for run in runs])
        lines.append(f"| {row['method']} | " + " | ".join(cells)
                     + f" | {row.get('wrong_object', '-')} | {seconds:.3f} |")
    return "\n".join(lines)
