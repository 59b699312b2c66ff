#!/usr/bin/env python
"""Segment images with any prompts and save the drawings (detectron2's Visualizer) as PNGs.

    python demo/demo.py --config-file configs/mqformer_swin_large.yaml --input a.jpg b.jpg \
        --output vis/ --prompts "cat,dog" --task instance --opts MODEL.WEIGHTS model_final.pth

--input also takes glob patterns ("photos/*.jpg"). Each input's drawing is OUTPUT/<input stem>.png;
existing files are never replaced unless --overwrite is given.
"""
import argparse
import glob
import logging
import os
import sys
from typing import List, Sequence

import cv2
from detectron2.utils.logger import setup_logger
from tqdm import tqdm

from mqformer_d2.data.images import read_image
from mqformer_d2.engine import MQFormerPredictor, build_config, draw_prediction
from mqformer_d2.engine.predictor import PREDICTOR_TASKS

logger = logging.getLogger("mqformer_d2.demo")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="MQ-Former YAML config")
    parser.add_argument("--input", required=True, nargs="+", help="image files or glob patterns")
    parser.add_argument("--output", required=True, help="folder of the drawings (created if needed)")
    parser.add_argument("--prompts", required=True,
                        help="class names or sentences separated by --separator, e.g. 'cat,dog'")
    parser.add_argument("--separator", default=",",
                        help="separator of --prompts (default ','; use e.g. ';' for sentences with commas)")
    parser.add_argument("--task", default="instance", choices=PREDICTOR_TASKS)
    parser.add_argument("--confidence-threshold", type=float, default=0.5,
                        help="instance task: draw instances scoring above this")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--cpu", action="store_true", help="run on CPU (MODEL.DEVICE cpu)")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER,
                        help="config changes as KEY VALUE pairs, e.g. MODEL.WEIGHTS model.pth")
    return parser


def parse_prompts(text: str, separator: str) -> List[str]:
    """'cat, dog' -> ['cat', 'dog'] (blank entries are an error)."""
    prompts = [prompt.strip() for prompt in text.split(separator)]
    if not all(prompts):
        raise ValueError(f"--prompts {text!r} has an empty prompt (separator {separator!r})")
    return prompts


def expand_inputs(patterns: Sequence[str]) -> List[str]:
    """Files named by `patterns` (glob patterns expanded, in order); a name matching nothing is an error."""
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise FileNotFoundError(f"--input {pattern}: no such file")
        files.extend(matches)
    return files


def output_paths(inputs: Sequence[str], output_dir: str, overwrite: bool) -> List[str]:
    """OUTPUT/<stem>.png per input; errors before any work on a name clash or, without
    `overwrite`, on files that already exist."""
    paths = [os.path.join(output_dir, os.path.splitext(os.path.basename(f))[0] + ".png") for f in inputs]
    if len(set(paths)) != len(paths):
        clashes = sorted({p for p in paths if paths.count(p) > 1})
        raise ValueError(f"several inputs would be drawn to the same file: {clashes[:5]}; "
                         "run them into separate --output folders")
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; "
                              "pass --overwrite to replace them or choose another --output")
    return paths


def run(args) -> List[str]:
    """Draw every input; returns the written files."""
    prompts = parse_prompts(args.prompts, args.separator)
    inputs = expand_inputs(args.input)
    outputs = output_paths(inputs, args.output, args.overwrite)
    cfg = build_config(args.config_file, args.opts, cpu=args.cpu)
    predictor = MQFormerPredictor(cfg)
    os.makedirs(args.output, exist_ok=True)
    for image_file, output_file in tqdm(list(zip(inputs, outputs)), desc="demo", unit="img",
                                        disable=len(inputs) < 2):
        image = read_image(image_file, format="BGR")
        # Only the best prompt per pixel is drawn: the bounded form, whatever the vocabulary's size.
        prediction = predictor(image, prompts=prompts, task=args.task, semantic_output="labels")
        drawing = draw_prediction(image[:, :, ::-1], prediction, prompts, args.task, args.confidence_threshold)
        if not args.overwrite and os.path.exists(output_file):  # appeared while we were running
            raise FileExistsError(f"{output_file} appeared meanwhile; not replacing it without --overwrite")
        if not cv2.imwrite(output_file, drawing[:, :, ::-1]):
            raise OSError(f"could not write {output_file}")
    logger.info("wrote %d drawing(s) to %s", len(outputs), args.output)
    return outputs


def main(argv=None) -> List[str]:
    setup_logger(name="mqformer_d2")
    args = argument_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
