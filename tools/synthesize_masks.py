#!/usr/bin/env python
"""Synthetic masks from boxes (paper 3.4): turn a registered detection dataset into a segmentation one.

    python tools/synthesize_masks.py --config-file CFG --dataset NAME --output FILE \\
        [--batch-size 4] [--min-quality 0.5] [--num-gpus N] [--overwrite] MODEL.WEIGHTS ckpt.pth

Every box-only annotation of dataset NAME becomes a box prompt of `box_prompting.predict_masks_for_boxes`
(a denoising-style query made from the box and its class name, no noise); its mask is written as
COCO RLE with a `score` (text probability x mean mask probability) and a `quality` (IoU of the
mask's tight box with the prompt box). Masks with quality below --min-quality, and empty ones, are
dropped: their annotation stays in the file as a box-only target (with its score and quality).
Annotations that already have a mask keep it.

Resumable: each process appends the results of every finished batch to
`<FILE>.parts/part-<rank>.jsonl` (flushed per batch); a restart with the same settings skips the
finished images, and the main process merges the parts into FILE (written once, at the end, then
the parts folder is removed). Batches are fixed by the dataset order and --batch-size, whatever the
number of processes, so an interrupted run gives the same file as an uninterrupted one. An existing
FILE is never replaced unless --overwrite is given.

The library is `mqformer_d2.synthetic.masks`; this is its command line. Register the output with
`mqformer_d2.synthetic.register_synthetic_masks` (logged at the end).
"""
import argparse
import sys
from typing import Sequence

from detectron2.utils.logger import setup_logger

import mqformer_d2  # noqa: F401  (registers the model and the datasets)
from mqformer_d2.registration import add_register_module_argument, import_registration_modules
from mqformer_d2.synthetic import MaskSynthesisJob, synthesize_masks


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the checkpoint's config")
    parser.add_argument("--dataset", required=True, help="registered dataset whose boxes are prompted")
    parser.add_argument("--output", required=True, help="COCO json to write")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (per process)")
    parser.add_argument("--min-quality", type=float, default=0.5,
                        help="drop masks whose tight box has a lower IoU with the prompt box")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--cpu", action="store_true", help="run on CPU (MODEL.DEVICE cpu, GPUs hidden)")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0)
    parser.add_argument("--dist-url", default="auto", help="detectron2 launch's rendezvous url")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config changes: KEY VALUE pairs")
    add_register_module_argument(parser)
    return parser


def run(argv: Sequence[str]) -> None:
    """Parse the command line and run `mqformer_d2.synthetic.synthesize_masks`."""
    args = argument_parser().parse_args(list(argv))
    import_registration_modules(args.register_module)
    # The arguments process_main passes in the main process: detectron2 caches setup_logger by its
    # arguments, so the handler is added once (other arguments printed every line twice).
    setup_logger(name="mqformer_d2", distributed_rank=0)
    job = MaskSynthesisJob(config_file=args.config_file, dataset=args.dataset, output=args.output, opts=args.opts,
                           batch_size=args.batch_size, min_quality=args.min_quality, overwrite=args.overwrite,
                           cpu=args.cpu)
    synthesize_masks(job, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
                     dist_url=args.dist_url)


if __name__ == "__main__":
    run(sys.argv[1:])
