#!/usr/bin/env python
"""Write an MQ-Former checkpoint from weights of another layout, and print what was loaded.

    python tools/convert_weights.py --config-file configs/mqformer_R50.yaml [--overwrite] SRC DST [KEY VALUE ...]

SRC: a Mask DINO checkpoint, a Swin checkpoint (Microsoft's or timm's layout), detectron2 ResNet
weights (`R-50.pkl`), or an MQ-Former checkpoint. The model of `--config-file` (with the KEY VALUE
overrides; built on CPU, random weights) is loaded from SRC by `MQFormerCheckpointer`, which prints
the load report (per component: tensors loaded / left as built; the file's tensors that were
skipped, and why). DST then holds exactly the tensors taken from SRC, under MQ-Former's names (in
`{"model": state_dict}`, readable with `torch.load(weights_only=True)`), so that training
(`MODEL.WEIGHTS DST`), `MQFormerPredictor` and detectron2's `DefaultPredictor` load it by name with
the same config. An existing DST is never replaced unless --overwrite is given.
"""
import argparse
import logging
import os
import sys
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

import mqformer_d2  # noqa: F401  (registers the model)
from mqformer_d2.checkpoint import LoadReport, MQFormerCheckpointer
from mqformer_d2.engine import build_config
from mqformer_d2.checkpoint import check_weights_path
from mqformer_d2.registration import add_register_module_argument, import_registration_modules


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SRC", help="weights file to convert")
    parser.add_argument("destination", metavar="DST", help="MQ-Former checkpoint to write (.pth)")
    parser.add_argument("--config-file", required=True, help="config of the model the weights are for")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    parser.add_argument("opts", nargs="*", help="config overrides KEY VALUE ... (after SRC DST)")
    add_register_module_argument(parser)
    # Intermixed: flags are flags anywhere, also after SRC DST or the overrides ("SRC DST --overwrite").
    args = parser.parse_intermixed_args(argv)
    import_registration_modules(args.register_module)
    return args


def convert(source: str, config_file: str, opts: List[str]) -> Tuple[Dict[str, torch.Tensor], LoadReport]:
    """(the tensors the model of the config took from `source`, under MQ-Former names; the report)."""
    cfg = build_config(config_file, opts, cpu=True)
    model = build_model(cfg)
    checkpointer = MQFormerCheckpointer(model)
    checkpointer.load(source)
    report = checkpointer.last_report
    state = model.state_dict()
    return {name: state[name].clone() for name in report.sources}, report


def write_checkpoint(tensors: Dict[str, torch.Tensor], report: LoadReport, destination: str, overwrite: bool) -> None:
    """Save `{"model": tensors, ...}` to `destination`, created exclusively unless `overwrite`."""
    folder = os.path.dirname(os.path.abspath(destination))
    os.makedirs(folder, exist_ok=True)
    mode = "wb" if overwrite else "xb"
    try:
        with open(destination, mode) as f:
            torch.save({"model": tensors, "__source__": os.path.abspath(report.path),
                        "__source_format__": report.file_format}, f)
    except FileExistsError:
        raise FileExistsError(f"{destination} already exists; pass --overwrite to replace it") from None


def main(argv: Optional[List[str]] = None) -> LoadReport:
    args = parse_args(argv)
    setup_logger(name="mqformer_d2", abbrev_name="mq").setLevel(logging.WARNING)
    if os.path.exists(args.destination) and not args.overwrite:
        raise FileExistsError(f"{args.destination} already exists; pass --overwrite to replace it")
    check_weights_path(args.source, "SRC")  # before the model is built
    tensors, report = convert(args.source, args.config_file, args.opts)
    write_checkpoint(tensors, report, args.destination, args.overwrite)
    print(report)
    print(f"wrote {args.destination}: {len(tensors)} tensors; load it as MODEL.WEIGHTS with --config-file "
          f"{args.config_file}" + (f" and {' '.join(map(str, args.opts))}" if args.opts else ""))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
