#!/usr/bin/env python
"""Export a trained MQ-Former for deployment, in detectron2's convention:

    python tools/deploy/export_model.py --config-file RUN/config.yaml --format onnx \
        --output output/export/shapes [--sample-image IMAGE] [--vocabulary "red star,blue cross"] \
        MODEL.WEIGHTS RUN/model_final.pth

The vocabulary is fixed at export: its text embeddings are computed once and written beside the
graph with the names (default: MODEL.MQFORMER.TEST.VOCABULARY, else the `text_prompts` of
DATASETS.TEST[0]; stuff classes from that dataset's metadata, or --stuff). `--format onnx` keeps
the input size and the number of prompts free (multi-scale deformable attention becomes standard
GridSample nodes, opset 18); `--format torchscript` traces, so it takes the sample image's size
only. The output folder must not exist. Run the export with `mqformer_d2.export.ExportedPredictor`
(onnxruntime, no model code).
"""
import argparse
import logging
import os
import sys
from typing import List, Optional

import cv2
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

import mqformer_d2  # noqa: F401  (registers the model and the built-in datasets)
from mqformer_d2.checkpoint import MQFormerCheckpointer, check_weights_path
from mqformer_d2.data.detectron2_datasets import adapt_detectron2_dataset
from mqformer_d2.engine import build_config
from mqformer_d2.export import export_model
from mqformer_d2.modeling.meta_arch.vocabulary import stuff_prompts
from mqformer_d2.registration import add_register_module_argument, import_registration_modules

logger = logging.getLogger("export_model")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the trained model's config")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--output", required=True, help="new folder for the export (must not exist)")
    parser.add_argument("--sample-image", default=None, help="image the graph is traced on (default: grey)")
    parser.add_argument("--vocabulary", default=None,
                        help="class names or sentences to export, separated by --separator, e.g. 'cat,dog'")
    parser.add_argument("--stuff", default=None, help="which of them are stuff in panoptic outputs, e.g. 'sky'")
    parser.add_argument("--separator", default=",", help="separator of --vocabulary and --stuff (default ',')")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    add_register_module_argument(parser)
    args = parser.parse_args(argv)
    import_registration_modules(args.register_module)
    args.vocabulary = split_texts(args.vocabulary, args.separator, "--vocabulary")
    args.stuff = split_texts(args.stuff, args.separator, "--stuff")
    return args


def split_texts(text: Optional[str], separator: str, option: str) -> Optional[List[str]]:
    """'cat, dog' -> ['cat', 'dog']; None stays None; an empty entry is an error."""
    if text is None:
        return None
    texts = [part.strip() for part in text.split(separator)]
    if not all(texts):
        raise SystemExit(f"{option} {text!r} has an empty entry (separator {separator!r})")
    return texts


def vocabulary_of(cfg, names: Optional[List[str]], stuff: Optional[List[str]]):
    """(texts, stuff texts) to export: the given ones, else the config's test vocabulary, else
    DATASETS.TEST[0]'s `text_prompts` (and its stuff classes)."""
    metadata = None
    if len(cfg.DATASETS.TEST):
        adapt_detectron2_dataset(cfg.DATASETS.TEST[0])
        metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])
    texts = names or list(cfg.MODEL.MQFORMER.TEST.VOCABULARY) or list(getattr(metadata, "text_prompts", None) or [])
    if not texts:
        raise ValueError("no vocabulary to export: give --vocabulary, set MODEL.MQFORMER.TEST.VOCABULARY, or name a "
                         "dataset with text_prompts in DATASETS.TEST")
    if stuff is None:
        stuff = sorted(stuff_prompts(metadata) & set(texts))
    unknown = sorted(set(stuff) - set(texts))
    if unknown:
        raise ValueError(f"--stuff names {unknown}, which are not in the vocabulary {texts}")
    return texts, stuff


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    setup_logger(name="mqformer_d2")
    setup_logger(name="export_model")
    if os.path.exists(args.output):
        raise SystemExit(f"{args.output} exists; choose a new --output folder (nothing is overwritten)")
    cfg = build_config(args.config_file, args.opts, cpu=True)
    check_weights_path(cfg.MODEL.WEIGHTS)
    model = build_model(cfg)
    MQFormerCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    sample = None
    if args.sample_image:
        sample = cv2.imread(args.sample_image, cv2.IMREAD_COLOR)
        if sample is None:
            raise SystemExit(f"--sample-image {args.sample_image}: not a readable image")
    texts, stuff = vocabulary_of(cfg, args.vocabulary, args.stuff)
    files = export_model(model, cfg, texts, args.output, args.format, sample, stuff)
    logger.info("wrote %s (%d prompts: %s)", files.folder, len(texts), ", ".join(texts))
    return files.folder


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
