"""Generate the benchmark from the command line.

``python -m mqformer_d2.data.shapes --root datasets --seed 0 [--train-images N ...]``

Generates the benchmark under ``<root>/mqformer_shapes`` unless a copy with the same parameters is
already there.
"""
import argparse
import dataclasses
import logging

from .benchmark import ShapesBenchmarkConfig, default_workers, ensure_benchmark
from .layout import default_root

logger = logging.getLogger("mqformer_d2.data.shapes")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=default_root(),
                        help="parent folder of mqformer_shapes/ (default: $DETECTRON2_DATASETS "
                             "or datasets)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="generation processes (the output does not depend on it)")
    for field in dataclasses.fields(ShapesBenchmarkConfig):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=field.default,
                            help=f"default: {field.default}")
    return parser.parse_args(argv)


def main(argv=None) -> str:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    fields = dataclasses.fields(ShapesBenchmarkConfig)
    config = ShapesBenchmarkConfig(**{field.name: getattr(args, field.name) for field in fields})
    path = ensure_benchmark(args.root, config, args.workers)
    logger.info("mqformer_shapes is ready at %s", path)
    return path


if __name__ == "__main__":
    main()
