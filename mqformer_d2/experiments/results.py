"""Reading results back: metric lookup in detectron2's nested results, the synthetic benchmark's
summary table, and curves from metrics.json (used by the main job, the query ablation and the
synthetic data experiment)."""
import json
import math
from typing import Dict, List, Optional, Sequence, Tuple

# (label, dataset, task, metric, target, higher is better) of the main job's table. A task of
# None reads a suite summary (results[dataset][metric]).
SHAPES_TABLE: List[Tuple[str, str, Optional[str], str, Optional[float], bool]] = [
    ("instance mask AP", "mqformer_shapes_val_instance", "segm", "AP", 40.0, True),
    ("semantic mIoU", "mqformer_shapes_val_semantic", "sem_seg", "mIoU", 70.0, True),
    ("panoptic PQ", "mqformer_shapes_val_panoptic", "panoptic_seg", "PQ", 60.0, True),
    ("referring cIoU", "mqformer_shapes_val_referring", "referring", "cIoU", None, True),
    ("referring mIoU", "mqformer_shapes_val_referring", "referring", "mIoU", 50.0, True),
    ("foreground MAE", "mqformer_shapes_val_foreground", "foreground", "MAE", None, False),
    ("foreground max F", "mqformer_shapes_val_foreground", "foreground", "maxF", None, True),
    ("open-vocab suite mean mask AP", "mqformer_shapes_seginw", None, "mean_segm_AP", 30.0, True),
]
FRACTION_METRICS = ("MAE", "maxF")  # in [0, 1]; everything else is in percent


def find_metric(results: Dict, dataset: str, task: Optional[str], metric: str) -> Optional[float]:
    """results[dataset][task][metric] (or results[dataset][metric] when task is None); None when
    absent or NaN."""
    entry = results.get(dataset, {})
    if task is not None:
        entry = entry.get(task, {}) if isinstance(entry, dict) else {}
    value = entry.get(metric) if isinstance(entry, dict) else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def format_metric(metric: str, value: Optional[float]) -> str:
    if value is None:
        return "missing"
    return f"{value:.3f}" if metric in FRACTION_METRICS else f"{value:.1f}"


def shapes_summary_table(results: Dict) -> str:
    """The main job's table (markdown) with its targets."""
    lines = ["| metric | value | target |", "|---|---|---|"]
    for label, dataset, task, metric, target, higher in SHAPES_TABLE:
        goal = "-" if target is None else f"{'>=' if higher else '<='} {target:g}"
        lines.append(f"| {label} | {format_metric(metric, find_metric(results, dataset, task, metric))} | {goal} |")
    return "\n".join(lines)


def stuff_miou(results: Dict, dataset: str, stuff_classes: Sequence[str]) -> Optional[float]:
    """Mean of SemSegEvaluator's per-class "IoU-<class>" over the stuff classes."""
    values = [find_metric(results, dataset, "sem_seg", f"IoU-{name}") for name in stuff_classes]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def read_metrics(path: str) -> List[dict]:
    """detectron2's metrics.json: one JSON object per line."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def metric_series(metrics: List[dict], key: str) -> List[Tuple[int, float]]:
    """(iteration, value) pairs of one key of metrics.json."""
    return [(m["iteration"], m[key]) for m in metrics if key in m]


def shapes_validation_keys() -> List[Tuple[str, str]]:
    """(label, metrics.json key) of the main job's validation metrics, as detectron2 flattens them."""
    return [(label, f"{dataset}/{task}/{metric}" if task else f"{dataset}/{metric}")
            for label, dataset, task, metric, _, _ in SHAPES_TABLE]


# (title, [(line label, metrics.json key)]) of the training diagnostics (modeling/meta_arch/
# training_diagnostics.py), drawn when a run logged them.
DIAGNOSTIC_PANELS = [
    ("selected tokens inside things (share)", [("selected_in_things", "diag/selected_in_things")]),
    ("best proposal mask IoU per thing", [("best_proposal_iou", "diag/best_proposal_iou")]),
    ("class logit scale and bias", [("scale", "diag/logit_scale"), ("bias", "diag/logit_bias")]),
    ("cosine between thing names", [("mean", "diag/thing_name_cos_mean"), ("max", "diag/thing_name_cos_max")]),
]


def plot_training_curves(runs: Dict[str, List[dict]], path: str,
                         losses: Sequence[str] = ("total_loss", "loss_ce", "loss_mask", "loss_dice")) -> None:
    """One PNG of small panels: the loss terms, each of the main job's validation metrics and the
    training diagnostics (when logged), over iterations, with one line per run (`runs`: name ->
    metrics.json records)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("training losses (final layer)", [(name, name) for name in losses])]
    panels += [(label, [(label, key)]) for label, key in shapes_validation_keys()]
    panels += [(title, series) for title, series in DIAGNOSTIC_PANELS
               if any(metric_series(metrics, key) for metrics in runs.values() for _, key in series)]
    columns = 3
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    for axis, (title, series) in zip(axes.flat, panels):
        for run, metrics in runs.items():
            for name, key in series:
                points = metric_series(metrics, key)
                if points:
                    label = run if len(series) == 1 else (name if len(runs) == 1 else f"{run}: {name}")
                    axis.plot(*zip(*points), label=label, linewidth=1, marker="o" if len(points) < 10 else None)
        axis.set(title=title, xlabel="iteration")
        if len(series) > 1 and title.startswith("training losses"):
            axis.set_yscale("log")
        if axis.lines:
            axis.legend(fontsize=7)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
