#!/usr/bin/env python
"""Train or evaluate MQ-Former (detectron2-style command line; see docs/usage.md).

    python train_net.py --config-file configs/mqformer_R50.yaml --num-gpus 8
    python train_net.py --config-file CFG --resume                       # continue OUTPUT_DIR's run
    python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS out/model_final.pth
    python train_net.py --config-file CFG --eval-only --resume OUTPUT_DIR out  # out's last checkpoint
    python train_net.py --config-file configs/mqformer_tiny_cpu.yaml --cpu --num-gpus 2  # 2 CPU processes

Multi-machine: --num-machines M --machine-rank R --dist-url tcp://HOST:PORT on every machine.
The work is done by `mqformer_d2.engine.main`, re-exported here for in-process use.
"""
from mqformer_d2.engine import argument_parser, launch_main, main

__all__ = ["main"]

if __name__ == "__main__":
    launch_main(argument_parser().parse_args())
