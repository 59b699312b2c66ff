"""Exemplar prompts on the built-in benchmark (`make exemplars`): from a trained main-job run, train
the exemplar stage per pooling and seed, and print exemplar- beside text-prompted mask AP. What it
does and writes: `mqformer_d2.experiments.exemplars`.

    .venv/bin/python tools/exemplar_experiment.py [--run-dir output/shapes/run_X] [--output-dir DIR]
        [--poolings mean,max,attention,gated_attention] [--seeds 42,43] [--iterations 300]
        [--exemplar-sets FILE]
"""
import os
import sys

from mqformer_d2.experiments import exemplars

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    sys.exit(exemplars.main(sys.argv[1:], root=ROOT))
