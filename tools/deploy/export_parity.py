#!/usr/bin/env python
"""`make export`: the newest main-job model exported to ONNX and evaluated beside PyTorch
(`mqformer_d2.experiments.export_parity`)."""
import sys

from detectron2.utils.logger import setup_logger

import mqformer_d2  # noqa: F401  (registers the model and the built-in datasets)
from mqformer_d2.experiments.export_parity import main

if __name__ == "__main__":
    setup_logger(name="mqformer_d2")
    sys.exit(main())
