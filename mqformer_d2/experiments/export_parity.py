"""`make export`: export the newest main-job model to ONNX and evaluate the export with the
project's evaluators beside the PyTorch model, on the benchmark's instance, semantic and panoptic
validation splits. Writes a new output/export/run_<time>/ (the export in onnx/, both models'
evaluation files, parity.json and parity.md) and prints the parity table."""
import argparse
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model

from ..checkpoint import MQFormerCheckpointer
from ..engine import MQFormerTrainer, build_config
from ..engine.run_dirs import claim_dir, claim_timestamped_dir
from ..evaluation import build_evaluator
from ..export import export_model
from ..export.runtime import ExportedModel
from ..modeling.meta_arch.vocabulary import stuff_prompts
from .results import find_metric
from .runs import newest_run

logger = logging.getLogger(__name__)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# (label, dataset, task, metric) compared; AP, mIoU and PQ are the parity criteria.
PARITY_METRICS: List[Tuple[str, str, str, str]] = [
    ("instance mask AP", "mqformer_shapes_val_instance", "segm", "AP"),
    ("instance mask AP50", "mqformer_shapes_val_instance", "segm", "AP50"),
    ("instance box AP", "mqformer_shapes_val_instance", "bbox", "AP"),
    ("semantic mIoU", "mqformer_shapes_val_semantic", "sem_seg", "mIoU"),
    ("panoptic PQ", "mqformer_shapes_val_panoptic", "panoptic_seg", "PQ"),
    ("panoptic PQ things", "mqformer_shapes_val_panoptic", "panoptic_seg", "PQ_th"),
    ("panoptic PQ stuff", "mqformer_shapes_val_panoptic", "panoptic_seg", "PQ_st"),
]
PARITY_TOLERANCE = 0.1  # points


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", default=None, help="a main-job run (default: the newest output/shapes/run_*)")
    parser.add_argument("--output-dir", default=None, help="a new folder (default: a new output/export/run_<time>/)")
    return parser.parse_args(argv)


def export_vocabulary(datasets: Sequence[str]) -> Tuple[List[str], List[str]]:
    """The union of the datasets' `text_prompts` (first-seen order) and the stuff among them."""
    texts, stuff = [], set()
    for name in datasets:
        metadata = MetadataCatalog.get(name)
        texts += [t for t in metadata.text_prompts if t not in texts]
        stuff |= stuff_prompts(metadata)
    return texts, sorted(stuff & set(texts))


def evaluate(cfg, model, dataset: str, folder: str) -> Dict:
    """{dataset: results} of detectron2's evaluation loop with the dataset's own evaluator (as
    `train_net.py --eval-only`)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATASETS.TEST = (dataset,)
    cfg.freeze()
    evaluator = build_evaluator(cfg, dataset, output_folder=os.path.join(folder, dataset))
    results = MQFormerTrainer.test(cfg, model, evaluators=[evaluator])
    return results if dataset in results else {dataset: results}  # one dataset: detectron2 unwraps it


def parity_table(pytorch: Dict, onnx: Dict) -> Tuple[str, bool]:
    """(markdown table, whether every AP / mIoU / PQ row is within PARITY_TOLERANCE)."""
    lines = ["| metric | PyTorch | onnxruntime | difference |", "|---|---|---|---|"]
    within = True
    for label, dataset, task, metric in PARITY_METRICS:
        a, b = find_metric(pytorch, dataset, task, metric), find_metric(onnx, dataset, task, metric)
        if a is None or b is None:
            lines.append(f"| {label} | {a} | {b} | missing |")
            within = False
            continue
        within &= abs(a - b) <= PARITY_TOLERANCE
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    return "\n".join(lines), within


def main(argv=None) -> int:
    args = parse_args(argv)
    run_dir = args.run_dir or newest_run(os.path.join(ROOT, "output", "shapes"))
    folder = (claim_dir(args.output_dir) if args.output_dir
              else claim_timestamped_dir(os.path.join(ROOT, "output", "export"), "run_"))
    cfg = build_config(os.path.join(run_dir, "config.yaml"),
                       ["MODEL.WEIGHTS", os.path.join(run_dir, "model_final.pth"), "OUTPUT_DIR", folder], cpu=True)
    model = build_model(cfg)
    MQFormerCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    datasets = sorted({dataset for _, dataset, _, _ in PARITY_METRICS})
    texts, stuff = export_vocabulary(datasets)
    files = export_model(model, cfg, texts, os.path.join(folder, "onnx"), "onnx", stuff=stuff)
    exported = ExportedModel(files.folder)
    pytorch, onnx = {}, {}
    for dataset in datasets:
        pytorch.update(evaluate(cfg, model, dataset, os.path.join(folder, "inference_pytorch")))
        onnx.update(evaluate(cfg, exported, dataset, os.path.join(folder, "inference_onnx")))
    table, within = parity_table(pytorch, onnx)
    with open(os.path.join(folder, "parity.json"), "w") as f:
        json.dump({"run_dir": run_dir, "pytorch": pytorch, "onnxruntime": onnx, "within_tolerance": within}, f,
                  indent=2, default=float)
    verdict = f"every AP, mIoU and PQ within {PARITY_TOLERANCE} points: {'yes' if within else 'NO'}"
    with open(os.path.join(folder, "parity.md"), "w") as f:
        f.write(f"Main-job model {run_dir}, exported to {files.folder}\n\n{table}\n\n{verdict}\n")
    print(f"\nPyTorch against its ONNX export in onnxruntime (model of {run_dir}):\n{table}\n{verdict}\n"
          f"written to {folder}")
    return 0 if within else 1
