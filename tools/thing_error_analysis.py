#!/usr/bin/env python
"""Where do thing predictions fail: finding the object, or naming it? (main job diagnostics)

For every thing target (an annotation with a box) of a labelled dataset, the trained model's final
decoder layer is matched to the targets with the training matcher, and four shares are reported
(%): localised (some query's mask has IoU >= 0.5), matched_mask_ok, matched_class_ok (the matched
query's top text is the target's class) and matched_both_ok.

With --probe-dataset, linear softmax probes over the thing classes, fitted on that dataset's
things and scored on the analysed dataset's, locate where the naming is lost: RoIAlign grids under
the true box of every backbone level, encoder level and the mask features, the selected proposal's
content, every decoder layer's matched query and the class head's input; beside them the class
head's own naming, the same probes on a randomly initialised model of the run's config and seed
(the baseline; --no-baseline skips it) and a probe on the ground-truth mask cropped to its box.
The text side: pairwise cosine of the thing-name embeddings, the logit scale and bias.

The library is `mqformer_d2.analysis`; this is its command line. It writes thing_naming.md and
thing_naming.json into a new folder RUN/analysis/thing_naming_<time>/ and prints the table.

    .venv/bin/python tools/thing_error_analysis.py --run-dir output/shapes/run_<time> \\
        [--dataset mqformer_shapes_val] [--max-images 200] \\
        [--probe-dataset mqformer_shapes_train --probe-images 400]
"""
import argparse
import logging
import os
import sys
from typing import Dict

from detectron2.utils.logger import setup_logger

import mqformer_d2  # noqa: F401  (registers the model and the datasets)
from mqformer_d2.analysis import DiagnosisSettings, diagnose_run, markdown_report, write_report
from mqformer_d2.registration import add_register_module_argument, import_registration_modules

logger = logging.getLogger("thing_error_analysis")


def parse_args(argv=None) -> argparse.Namespace:
    defaults = DiagnosisSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a training run's folder (config.yaml, model_final.pth)")
    parser.add_argument("--dataset", default=defaults.dataset, help="labelled dataset with thing boxes")
    parser.add_argument("--max-images", type=int, default=defaults.max_images)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--probe-dataset", default=None,
                        help="labelled dataset to fit the linear probes on, e.g. mqformer_shapes_train "
                             "(default: no probes)")
    parser.add_argument("--probe-images", type=int, default=defaults.probe_images)
    parser.add_argument("--grid", type=int, default=defaults.grid, help="RoIAlign read-out side (cells)")
    parser.add_argument("--mask-size", type=int, default=defaults.mask_size, help="ground-truth mask probe side")
    parser.add_argument("--l2", type=float, default=defaults.l2, help="probe weight decay")
    parser.add_argument("--max-iter", type=int, default=defaults.max_iter, help="probe L-BFGS iterations")
    parser.add_argument("--no-baseline", action="store_true", help="skip the random-init model")
    parser.add_argument("--output-dir", default=None,
                        help="parent of the new report folder (default: RUN/analysis)")
    add_register_module_argument(parser)
    args = parser.parse_args(argv)
    import_registration_modules(args.register_module)
    return args


def settings_from_args(args: argparse.Namespace) -> DiagnosisSettings:
    return DiagnosisSettings(dataset=args.dataset, max_images=args.max_images, probe_dataset=args.probe_dataset,
                             probe_images=args.probe_images, batch_size=args.batch_size, grid=args.grid,
                             mask_size=args.mask_size, l2=args.l2, max_iter=args.max_iter,
                             baseline=not args.no_baseline)


def main(argv=None) -> Dict:
    """Diagnose the run, write the report folder, print the tables; returns the JSON-able result
    (with "report": the written files)."""
    args = parse_args(argv)
    setup_logger(name="thing_error_analysis")
    setup_logger(name="mqformer_d2.analysis")
    result = diagnose_run(args.run_dir, settings_from_args(args))
    result["report"] = write_report(result, args.output_dir or os.path.join(args.run_dir, "analysis"))
    print(markdown_report(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
