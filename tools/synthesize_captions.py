#!/usr/bin/env python
"""Synthetic captions per object (paper 3.4): several texts for every annotation of a dataset.

    python tools/synthesize_captions.py --dataset NAME --output FILE \\
        [--captioner builtin|module:attr] [--max-captions 5] [--overwrite]

Writes a COCO-format json (the source's boxes, masks and classes) whose annotations carry `texts`:
the annotation's own texts, if it had any, then up to --max-captions new ones from the captioner
(`mqformer_d2.synthetic.captioners`). Crowd annotations get none. The unified mapper draws one of
`texts` per load. Register the output with `mqformer_d2.synthetic.register_synthetic_captions`
(logged at the end). An existing --output is never replaced unless --overwrite is given.

The library is `mqformer_d2.synthetic.captions`; this is its command line.
"""
import argparse
import sys
from typing import Dict, Sequence

from detectron2.utils.logger import setup_logger

import mqformer_d2  # noqa: F401  (registers the datasets)
from mqformer_d2.registration import add_register_module_argument, import_registration_modules
from mqformer_d2.synthetic import synthesize_captions


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="registered dataset whose objects are captioned")
    parser.add_argument("--output", required=True, help="COCO json to write")
    parser.add_argument("--captioner", default="builtin",
                        help="'builtin' (no model) or 'module:attr' (a Captioner, or fn(crop, box) -> list[str])")
    parser.add_argument("--max-captions", type=int, default=5, help="new captions per object, at most")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    add_register_module_argument(parser)
    return parser


def run(argv: Sequence[str]) -> Dict:
    """Parse the command line and run `mqformer_d2.synthetic.synthesize_captions`; returns the written json."""
    args = argument_parser().parse_args(list(argv))
    import_registration_modules(args.register_module)
    setup_logger(name="mqformer_d2")
    return synthesize_captions(args.dataset, args.output, args.captioner, args.max_captions, args.overwrite)


if __name__ == "__main__":
    run(sys.argv[1:])
