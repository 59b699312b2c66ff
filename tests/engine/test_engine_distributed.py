"""train_net.py's distributed path on CPU: 2 processes (DDP over gloo) started by detectron2's launch."""
import os

import torch
from detectron2.engine import launch
from helpers import TINY_CONFIG, TINY_OPTIONS, checkpoint_iteration, tiny_shapes_benchmark, train_net_args

from mqformer_d2.engine import main


def train_worker(root: str, argv: list) -> None:
    """Runs in each spawned process: point the benchmark names at `root`, then train_net's main."""
    torch.set_num_threads(1)
    with tiny_shapes_benchmark(root):
        main(train_net_args(*argv))


def test_two_cpu_processes_train_with_ddp(tmp_path):
    root, output_dir = str(tmp_path / "datasets"), str(tmp_path / "run")
    with tiny_shapes_benchmark(root):  # generated once here, reused by the workers
        pass
    argv = ["--config-file", TINY_CONFIG, "--cpu", "--num-gpus", 2, *TINY_OPTIONS,
            "DATASETS.TRAIN", "('mqformer_shapes_train',)", "DATASETS.TEST", "('mqformer_shapes_val_instance',)",
            "SOLVER.MAX_ITER", 2, "OUTPUT_DIR", output_dir]
    args = train_net_args(*argv)
    assert args.cpu and args.num_gpus == 2
    launch(train_worker, args.num_gpus, dist_url="auto", args=(root, [str(a) for a in argv]))
    assert checkpoint_iteration(os.path.join(output_dir, "model_final.pth")) == 1
    with open(os.path.join(output_dir, "log.txt")) as f:
        log = f.read()
    assert "Rank of current process: 0. World size: 2" in log
    assert os.path.isfile(os.path.join(output_dir, "log.txt.rank1"))
