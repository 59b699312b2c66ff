#!/usr/bin/env python
"""Train the matting refinement on the benchmark's matting split (generated on first use).

    .venv/bin/python tools/train_matting.py [--output-dir DIR] [--seed 0] [--steps 1500] \
        [--max-minutes 9] [--root datasets]

Writes DIR/refiner_final.pth and DIR/training.json into a new folder (default: a new
output/matting/refiner_<time>/); point MODEL.MQFORMER.MATTING.WEIGHTS at the .pth to matte prompts
with `MQFormerPredictor(..., matting=True)` or `demo/demo.py --matting`.
"""
import argparse
import logging
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None) -> argparse.Namespace:
    from mqformer_d2.matting.training import TrainingSettings

    defaults = TrainingSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=None, help="a new folder (default: output/matting/refiner_<time>)")
    parser.add_argument("--root", default=None, help="parent of mqformer_shapes_matting/ (default $DETECTRON2_DATASETS or datasets)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--prior", default=defaults.prior, choices=("colour", "closed_form"),
                        help="the alpha the network corrects (default %(default)s)")
    parser.add_argument("--crop-size", type=int, default=defaults.crop_size,
                        help="training windows around the unknown band, pixels (0 = whole images)")
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes,
                        help="stop training early when it would take longer (default %(default)s)")
    parser.add_argument("--train-images", type=int, default=None, help="use only the first N training images")
    return parser.parse_args(argv)


def main(argv=None) -> str:
    from detectron2.utils.logger import setup_logger

    from mqformer_d2.data.shapes.matting_split import MattingSplitConfig, load_matting_split
    from mqformer_d2.engine.run_dirs import claim_dir, claim_timestamped_dir
    from mqformer_d2.matting.training import TrainingSettings, train_refiner

    setup_logger(name="mqformer_d2")
    args = parse_args(argv)
    output_dir = (claim_dir(args.output_dir) if args.output_dir else
                  claim_timestamped_dir(os.path.join(ROOT, "output", "matting"), "refiner_"))
    records = load_matting_split(args.root or os.getenv("DETECTRON2_DATASETS", "datasets"),
                                 MattingSplitConfig(), "train")[:args.train_images]
    settings = TrainingSettings(steps=args.steps, batch_size=args.batch_size, seed=args.seed, crop_size=args.crop_size,
                                prior=args.prior,
                                max_minutes=args.max_minutes)
    weights = train_refiner(records, output_dir, settings)
    logging.getLogger("mqformer_d2").info("refiner weights: %s", weights)
    return weights


if __name__ == "__main__":
    main()
