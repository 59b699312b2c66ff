#!/usr/bin/env python
"""Segment images with any prompts and save the drawings (detectron2's Visualizer) as PNGs.

    python demo/demo.py --config-file configs/mqformer_swin_large.yaml --input a.jpg b.jpg \
        --output vis/ --prompts "cat,dog" --task instance --opts MODEL.WEIGHTS model_final.pth

--input also takes glob patterns ("photos/*.jpg"). Each input's drawing is OUTPUT/<input stem>.png,
titled with the task, the threshold and the prompts; existing files are never replaced unless
--overwrite is given. Without --prompts the vocabulary is the config's (MODEL.MQFORMER.TEST.VOCABULARY)
or that of its first test dataset. Exemplar prompts (a model trained by the exemplar stage, `make
exemplars`): --exemplar "part 4711=photo.jpg:10,20,80,90" (repeatable; the name's K boxes are pooled
into one prompt; an empty image, "NAME=:x0,y0,x1,y1", is a box on the input image itself),
--negative-exemplar likewise; without --prompts the exemplar names are the only prompts. The log says how many objects each drawing shows, and warns
when one shows none or when MODEL.WEIGHTS is empty (a random model draws next to nothing).

--matting (controllable matting) writes, per input and prompt, OUTPUT/<stem>_<prompt>_alpha.png
(the alpha matte, 8-bit gray) and OUTPUT/<stem>_<prompt>_cutout.png (the image with that alpha,
RGBA), instead of a drawing; it needs the refinement's weights in MODEL.MQFORMER.MATTING.WEIGHTS
(tools/train_matting.py) and mattes one object per prompt (the referring task).
"""
import argparse
import glob
import logging
import os
import sys
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.utils.logger import setup_logger
from tqdm import tqdm

from mqformer_d2.data.detectron2_datasets import adapt_detectron2_dataset
from mqformer_d2.engine import MQFormerPredictor, build_config
from mqformer_d2.engine.predictor import PREDICTOR_TASKS
from mqformer_d2.engine.visualization import draw_image_file
from mqformer_d2.registration import add_register_module_argument, import_registration_modules

logger = logging.getLogger("mqformer_d2.demo")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="MQ-Former YAML config")
    parser.add_argument("--input", required=True, nargs="+", help="image files or glob patterns")
    parser.add_argument("--output", required=True, help="folder of the drawings (created if needed)")
    parser.add_argument("--prompts", default=None,
                        help="class names or sentences separated by --separator, e.g. 'cat,dog'; default: "
                             "MODEL.MQFORMER.TEST.VOCABULARY, else the text prompts of DATASETS.TEST[0]")
    parser.add_argument("--stuff", default="",
                        help="panoptic: prompts that are stuff (one segment each, no score), e.g. 'sky,grass'")
    parser.add_argument("--separator", default=",",
                        help="separator of --prompts (default ','; use e.g. ';' for sentences with commas)")
    parser.add_argument("--task", default="instance", choices=PREDICTOR_TASKS,
                        help="what to draw; 'all' draws instance, semantic, panoptic and referring side by side")
    parser.add_argument("--confidence-threshold", type=float, default=0.5,
                        help="instance / detection: draw instances scoring above this; foreground: pixels")
    parser.add_argument("--exemplar", action="append", default=[], metavar="NAME=IMAGE:x0,y0,x1,y1",
                        help="an example box of prompt NAME on IMAGE (empty IMAGE: the input image); repeatable")
    parser.add_argument("--negative-exemplar", action="append", default=[], metavar="NAME=IMAGE:x0,y0,x1,y1",
                        help="a box of what prompt NAME is not (same form); repeatable")
    parser.add_argument("--matting", action="store_true",
                        help="write an alpha matte and an RGBA cut-out per prompt (needs "
                             "MODEL.MQFORMER.MATTING.WEIGHTS)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--cpu", action="store_true", help="run on CPU (MODEL.DEVICE cpu)")
    add_register_module_argument(parser)
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


def parse_exemplars(values: Sequence[str], flag: str = "--exemplar") -> Dict[str, List[Tuple]]:
    """["NAME=IMAGE:x0,y0,x1,y1", ...] -> {NAME: [(IMAGE or None, (x0, y0, x1, y1)), ...]} in the
    predictor's form; a malformed value is an error quoting it."""
    exemplars: Dict[str, List[Tuple]] = {}
    for value in values:
        name, _, rest = value.partition("=")
        image, _, box = rest.rpartition(":")
        try:
            coordinates = tuple(float(v) for v in box.split(","))
        except ValueError:
            coordinates = ()
        if not name.strip() or not _ or len(coordinates) != 4:
            raise ValueError(f"{flag} {value!r}: expected NAME=IMAGE:x0,y0,x1,y1 (empty IMAGE = the input image)")
        exemplars.setdefault(name.strip(), []).append((image or None, coordinates))
    return exemplars


def default_prompts(cfg) -> List[str]:
    """The vocabulary a demo without --prompts draws: MODEL.MQFORMER.TEST.VOCABULARY, else the
    text prompts of DATASETS.TEST[0] (also of a detectron2-style registration); else an error."""
    if len(cfg.MODEL.MQFORMER.TEST.VOCABULARY):
        return list(cfg.MODEL.MQFORMER.TEST.VOCABULARY)
    if len(cfg.DATASETS.TEST):
        name = cfg.DATASETS.TEST[0]
        adapt_detectron2_dataset(name)
        prompts = MetadataCatalog.get(name).get("text_prompts", None)
        if prompts:
            return list(prompts)
    raise ValueError("no prompts: pass --prompts 'cat,dog', or set MODEL.MQFORMER.TEST.VOCABULARY or a "
                     "DATASETS.TEST dataset with text prompts in --opts")


def stuff_prompts(text: str, separator: str, prompts: Sequence[str]) -> List[str]:
    """--stuff as a list; each entry must be one of the prompts."""
    stuff = parse_prompts(text, separator) if text else []
    unknown = [s for s in stuff if s not in prompts]
    if unknown:
        raise ValueError(f"--stuff {unknown} are not among the prompts {list(prompts)}")
    return stuff


def warn_about_random_weights(cfg) -> None:
    """A demo of a model without weights draws next to nothing: say so before it runs."""
    if not cfg.MODEL.WEIGHTS:
        logger.warning("MODEL.WEIGHTS is empty: the model has random weights, so it will draw next to nothing; "
                       "pass --opts MODEL.WEIGHTS path/to/model_final.pth")


def write_png(path: str, image_rgb, overwrite: bool) -> None:
    """Write an RGB drawing; never replaces a file that appeared meanwhile without `overwrite`."""
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} appeared meanwhile; not replacing it without --overwrite")
    if not cv2.imwrite(path, image_rgb[:, :, ::-1]):
        raise OSError(f"could not write {path}")


def prompt_slug(prompt: str) -> str:
    """A file-name-safe form of a prompt: 'the red circle' -> 'the_red_circle'."""
    return "".join(c if c.isalnum() else "_" for c in prompt.strip()).strip("_")[:60] or "prompt"


def matting_paths(inputs: Sequence[str], prompts: Sequence[str], output_dir: str, overwrite: bool) -> List[List[str]]:
    """Per input, per prompt: [alpha path, cut-out path]; the same checks as `output_paths`."""
    stems = [os.path.splitext(os.path.basename(f))[0] for f in inputs]
    paths = [[[os.path.join(output_dir, f"{stem}_{prompt_slug(p)}_{kind}.png") for kind in ("alpha", "cutout")]
              for p in prompts] for stem in stems]
    flat = [path for per_input in paths for pair in per_input for path in pair]
    if len(set(flat)) != len(flat):
        raise ValueError("several inputs or prompts would be written to the same file; use distinct "
                         "image names and prompts, or separate --output folders")
    existing = [p for p in flat if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; "
                              "pass --overwrite to replace them or choose another --output")
    return paths


def write_mattes(predictor, image_file: str, prompts: Sequence[str], paths: Sequence[Sequence[str]],
                 overwrite: bool) -> None:
    """Matte every prompt in one image: its alpha (gray PNG) and RGBA cut-out."""
    from mqformer_d2.matting.files import alpha_to_uint8

    image = cv2.imread(image_file, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"--input {image_file} cannot be read as an image")
    alphas = predictor(image, prompts=list(prompts), matting=True)["referring"]["alphas"].numpy()
    for alpha, (alpha_path, cutout_path) in zip(alphas, paths):
        alpha8 = alpha_to_uint8(alpha)
        rgba = np.dstack([image[:, :, ::-1], alpha8])
        for path, picture in ((alpha_path, alpha8), (cutout_path, rgba)):
            if not overwrite and os.path.exists(path):
                raise FileExistsError(f"{path} appeared meanwhile; not replacing it without --overwrite")
            if not cv2.imwrite(path, picture if picture.ndim == 2 else cv2.cvtColor(picture, cv2.COLOR_RGBA2BGRA)):
                raise OSError(f"could not write {path}")


def run_matting(args, cfg, inputs: Sequence[str], prompts: Sequence[str]) -> List[str]:
    """--matting: alpha and cut-out per input and prompt; returns the written files."""
    if args.task not in ("instance", "referring"):
        raise ValueError(f"--matting mattes one object per prompt (referring); --task {args.task} "
                         "cannot be combined with it")
    paths = matting_paths(inputs, prompts, args.output, args.overwrite)
    predictor = MQFormerPredictor(cfg)
    os.makedirs(args.output, exist_ok=True)
    for image_file, per_prompt in tqdm(list(zip(inputs, paths)), desc="matting", unit="img",
                                       disable=len(inputs) < 2):
        write_mattes(predictor, image_file, prompts, per_prompt, args.overwrite)
    written = [path for per_input in paths for pair in per_input for path in pair]
    logger.info("wrote %d alpha matte(s) and cut-out(s) to %s", len(written) // 2, args.output)
    return written


def run(args) -> List[str]:
    """Draw every input; returns the written files."""
    import_registration_modules(args.register_module)
    inputs = expand_inputs(args.input)
    outputs = None if args.matting else output_paths(inputs, args.output, args.overwrite)
    cfg = build_config(args.config_file, args.opts, cpu=args.cpu)
    exemplars = parse_exemplars(args.exemplar)
    negatives = parse_exemplars(args.negative_exemplar, "--negative-exemplar")
    if args.prompts is not None:
        prompts = parse_prompts(args.prompts, args.separator)
    else:
        prompts = [] if exemplars else default_prompts(cfg)
    if args.matting:
        if exemplars or negatives:
            raise SystemExit("--matting takes text prompts only, not --exemplar / --negative-exemplar")
        warn_about_random_weights(cfg)
        return run_matting(args, cfg, inputs, prompts)
    stuff = stuff_prompts(args.stuff, args.separator, prompts)
    warn_about_random_weights(cfg)
    predictor = MQFormerPredictor(cfg)
    os.makedirs(args.output, exist_ok=True)
    for image_file, output_file in tqdm(list(zip(inputs, outputs)), desc="demo", unit="img",
                                        disable=len(inputs) < 2):
        drawing = draw_image_file(predictor, image_file, prompts, args.task, args.confidence_threshold, stuff,
                                  exemplars, negatives)
        write_png(output_file, drawing.image, args.overwrite)
    logger.info("wrote %d drawing(s) to %s", len(outputs), args.output)
    return outputs


def main(argv=None) -> List[str]:
    setup_logger(name="mqformer_d2")
    args = argument_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
