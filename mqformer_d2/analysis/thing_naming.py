"""Where is thing naming lost? A trained run against its random-initialisation baseline.

For each model (the run's trained one and, as the baseline, a fresh initialisation of its config
and seed): the shares of found / named validation things (`shares`), the text side (`text_side`),
and, with a probe dataset, linear probes (`probes`) on every read-out of `features`, fitted on the
probe dataset's things and scored on the validation things, beside the class head's own naming.
"""
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from .features import TargetFeatures, collect_target_features
from .models import model_pair
from .probes import accuracy, probe_accuracy
from .shares import share_percentages
from .text_side import text_side_report

logger = logging.getLogger(__name__)


@dataclass
class DiagnosisSettings:
    """What to read out and how to probe (the tool's command-line options)."""

    dataset: str = "mqformer_shapes_val"
    max_images: int = 200
    probe_dataset: Optional[str] = None
    probe_images: int = 400
    batch_size: int = 8
    grid: int = 4
    mask_size: int = 16
    l2: float = 1e-2
    max_iter: int = 100
    baseline: bool = True


def dataset_records(name: str, max_images: int) -> List[Dict]:
    """The first `max_images` dataset dicts of `name`, tagged with "dataset_name"."""
    return [dict(r, dataset_name=name) for r in DatasetCatalog.get(name)[:max_images]]


def probe_sources(fit: TargetFeatures, evaluated: TargetFeatures, l2: float, max_iter: int,
                  skip: Sequence[str] = ()) -> Dict[str, Dict]:
    """{source: `probes.probe_accuracy`} for every source of `fit` but `skip`, in collection order."""
    results = {}
    for source, features in fit.sources.items():
        if source in skip:
            continue
        results[source] = probe_accuracy(features, fit.names, evaluated.sources[source], evaluated.names, l2, max_iter)
        logger.info("probe %-26s fit %5.1f%%  val %5.1f%%", source, results[source]["fit"], results[source]["eval"])
    return results


def class_head_accuracy(fit: Optional[TargetFeatures], evaluated: TargetFeatures) -> Dict[str, Dict]:
    """The class head's own naming of matched things (%): {"thing_names" | "all_texts": {"fit", "eval"}}."""
    return {key: {"fit": None if fit is None else accuracy(fit.predicted[key], fit.names),
                  "eval": accuracy(evaluated.predicted[key], evaluated.names)}
            for key in ("thing_names", "all_texts")}


def chance_levels(fit_names: Sequence[str], eval_names: Sequence[str]) -> Dict[str, float]:
    """Validation accuracy (%) of guessing uniformly and of always naming the fit set's most
    common class."""
    majority = Counter(fit_names).most_common(1)[0][0] if fit_names else None
    return {"uniform": 100.0 / max(len(set(fit_names) | set(eval_names)), 1),
            "majority": accuracy([majority] * len(eval_names), eval_names)}


def diagnose_model(model, cfg, settings: DiagnosisSettings, records: Dict[str, List[Dict]],
                   thing_names: Sequence[str], skip_sources: Sequence[str] = ()) -> Dict:
    """One model's shares, text side, class-head accuracy and probes; "names" holds the class
    names of its matched things ({"eval", "fit"}) for the caller (not serialised)."""
    collect = dict(thing_names=thing_names, batch_size=settings.batch_size, image_format=cfg.INPUT.FORMAT,
                   grid=settings.grid, mask_size=settings.mask_size)
    evaluated = collect_target_features(model, records["eval"], **collect)
    fit = collect_target_features(model, records["fit"], **collect) if "fit" in records else None
    probes = {} if fit is None else probe_sources(fit, evaluated, settings.l2, settings.max_iter, skip_sources)
    return {
        "shares": share_percentages(evaluated.outcomes),
        "text_side": text_side_report(model, thing_names) if len(thing_names) >= 2 else {},
        "class_head": class_head_accuracy(fit, evaluated),
        "probes": probes,
        "names": {"eval": evaluated.names, "fit": fit.names if fit is not None else []},
    }


def diagnose_run(run_dir: str, settings: DiagnosisSettings) -> Dict:
    """The whole diagnosis of a training run's folder (config.yaml, model_final.pth) as a JSON-able
    dict: "shares" / "text_side" / "class_head" / "probes" per model ("trained", "random_init"),
    "chance", "settings", and for continuity the trained model's shares and "thing_text_cosine" at
    the top level."""
    cfg, trained, baseline = model_pair(run_dir, settings.baseline)
    records = {"eval": dataset_records(settings.dataset, settings.max_images)}
    if settings.probe_dataset:
        records["fit"] = dataset_records(settings.probe_dataset, settings.probe_images)
    thing_names = list(MetadataCatalog.get(settings.dataset).get("thing_classes", None) or [])
    models = {"trained": trained, "random_init": baseline} if baseline is not None else {"trained": trained}
    per_model = {}
    for name, model in models.items():
        logger.info("reading out the %s model", name)
        per_model[name] = diagnose_model(model, cfg, settings, records, thing_names,
                                         skip_sources=("gt_mask",) if name != "trained" else ())
    names = per_model["trained"]["names"]
    for part in per_model.values():
        del part["names"]
    result = {key: {name: part[key] for name, part in per_model.items()}
              for key in ("shares", "text_side", "class_head", "probes")}
    trained_shares = result["shares"]["trained"]
    result.update(trained_shares, run_dir=run_dir, settings=asdict(settings), fit_things=len(names["fit"]),
                  images={part: len(part_records) for part, part_records in records.items()},
                  chance=chance_levels(names["fit"], names["eval"]) if names["fit"] else {})
    if result["text_side"]["trained"]:
        result["thing_text_cosine"] = result["text_side"]["trained"]["mean_cosine"]
    return result
