"""The main job: train MQ-Former from scratch on the built-in synthetic benchmark and evaluate every
task (`make train`). What it does and writes: `mqformer_d2.experiments.main_job`.

    .venv/bin/python tools/train_shapes.py [--config-file configs/shapes/mqformer_tiny_shapes.yaml]
        [--output-dir DIR] [--train-minutes M] [KEY VALUE ...]
"""
import os
import sys

from mqformer_d2.experiments import main_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    sys.exit(main_job.main(sys.argv[1:], root=ROOT))
