"""Every shell command of README.md and docs/usage.md is either run here as written (shortened by
appended overrides: the tiny test model, 2 iterations, the tiny synthetic benchmark) or listed
with the reason it cannot run in a CPU test, so that the documented commands cannot drift.

Run: the CPU training example, the configs/custom/ walk-through (train, evaluate, demo) and the
caption tool on the built-in benchmark. Skipped: commands that need GPUs, real datasets or weights
files that a test has no access to, the network, or tens of minutes (the main job itself), and
placeholders (CFG, run_<time>) that are not commands. Commands run in a scratch folder that has
the repository's configs/ and the data they read, so nothing is written into the repository.
"""
import os
import re
import shlex

import pytest
import torch

from detectron2_format_fixtures import write_coco_instances
from helpers import ROOT, TINY_OPTIONS, load_script, load_train_net, train_net_args
from mqformer_d2.registration import REGISTER_MODULES_ENV
from test_register_module import EXAMPLE_MODULE, EXAMPLE_NAMES, forget_module

torch.set_num_threads(2)
DOCS = ("README.md", "docs/usage.md")
SHORT = [*map(str, TINY_OPTIONS), "SOLVER.MAX_ITER", "2"]  # appended to train_net.py commands
GPU, DATA, LONG = "needs GPUs", "needs real datasets / weights files", "takes tens of minutes"

# Each documented command (whitespace-normalised, line continuations joined) -> None (run it) or the
# reason it is skipped. A new command in the docs fails test_every_documented_command_is_listed.
COMMANDS = {
    "make train": LONG + " (it is the main job)",
    "make demo": "needs the main job's trained run (tests/engine/test_demo_shapes.py runs its code on a random one)",
    "make test": "is this test suite",
    "python3 -m venv .venv": "installs software (network)",
    ".venv/bin/pip install torch==2.14.1 torchvision==0.29.1": "installs software (network)",
    ".venv/bin/pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'":
        "installs software (network)",
    "make setup": "installs software (network)",
    "make cuda": "compiles the CUDA op (tests/layers/test_ms_deform_attn.py covers it)",
    "make benchmark": LONG + " (benchmarks/)",
    "python train_net.py --config-file configs/coco/panoptic_swin_large.yaml --num-gpus 8 OUTPUT_DIR output/swin_l":
        GPU + "; " + DATA,
    "python train_net.py --config-file configs/coco/panoptic_swin_large.yaml --num-gpus 8 --resume OUTPUT_DIR output/swin_l":
        GPU + "; " + DATA,
    "python train_net.py --config-file CFG --num-gpus 8 --num-machines 2 --machine-rank 0 --dist-url tcp://10.0.0.1:29500":
        GPU + " on two machines",
    "python train_net.py --config-file configs/mqformer_tiny_cpu.yaml --cpu DATASETS.TRAIN \"('mqformer_shapes_train',)\" "
    "DATASETS.TEST \"()\" OUTPUT_DIR output/tiny_cpu": None,
    "python train_net.py --config-file configs/custom/mqformer_parts.yaml --register-module configs/custom/register_parts.py":
        None,
    "python train_net.py --config-file configs/custom/mqformer_parts.yaml --register-module configs/custom/register_parts.py "
    "--eval-only MODEL.WEIGHTS output/my_parts/model_final.pth": None,
    "python demo/demo.py --config-file configs/custom/mqformer_parts.yaml --register-module configs/custom/register_parts.py "
    "--input \"datasets/my_parts/images/*.jpg\" --output vis/my_parts --opts MODEL.WEIGHTS output/my_parts/model_final.pth":
        None,
    "python train_net.py --config-file CFG DATALOADER.BAD_ANNOTATIONS error": "CFG is a placeholder",
    "python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/swin_l/model_final.pth DATASETS.TEST "
    "\"('seginw_Elephants_val', 'seginw_Hand-Metal_val', 'refcoco_unc_val')\"": DATA,
    "python train_net.py --config-file CFG --eval-only --resume OUTPUT_DIR output/swin_l": DATA,
    "python demo/demo.py --config-file configs/mqformer_swin_large.yaml --input \"photos/*.jpg\" --output vis/ "
    "--prompts \"kettle,mug,cutting board,wall,floor\" --stuff \"wall,floor\" --task all "
    "--opts MODEL.WEIGHTS output/swin_l/model_final.pth": DATA,
    "python tools/convert_weights.py --config-file configs/mqformer_R50.yaml maskdino_r50_panoptic.pth "
    "weights/mqformer_r50_from_maskdino.pth": DATA + " (tests/checkpoint/test_weights_maskdino.py converts a fixture)",
    "MODEL.MQFORMER.TEXT_ENCODER.PRETRAINED weights/clip/ViT-B-32/open_clip_pytorch_model.bin":
        "a config change, not a command",
    "python tools/synthesize_masks.py --config-file configs/mqformer_swin_large.yaml --dataset objects365_v2_train "
    "--output synthetic/objects365_masks.json --batch-size 4 --min-quality 0.5 --num-gpus 8 "
    "MODEL.WEIGHTS output/swin_l/model_final.pth": GPU + "; " + DATA,
    "python tools/synthesize_captions.py --dataset mqformer_shapes_train_instance --output synthetic/shapes_captions.json "
    "--max-captions 5": None,
    "python tools/synthesize_captions.py --dataset my_parts_train --output synthetic/parts_captions.json "
    "--captioner my_package.captioning:describe_crop": "my_package is a placeholder for your captioner",
    "python train_net.py --config-file CFG DATASETS.TRAIN \"('coco_2017_train_unified_panoptic', "
    "'objects365_v2_train-syn-m')\" DATASETS.TRAIN_SAMPLING_RATIOS \"[1.0, 1.0]\"": DATA,
    ".venv/bin/python tools/synthetic_data_experiment.py [--hidden-fraction 0.5] [--split-seed 0] [--seeds 42,43] "
    "[--output-dir DIR] [KEY VALUE ...]": "a synopsis with placeholders; " + LONG,
    ".venv/bin/python tools/deploy/export_model.py --config-file output/shapes/run_<time>/config.yaml --format onnx "
    "--output output/export/shapes MODEL.WEIGHTS output/shapes/run_<time>/model_final.pth":
        "run_<time> is a placeholder (tests/export/test_export_tool.py runs the tool on a tiny model)",
    ".venv/bin/python tools/thing_error_analysis.py --run-dir output/shapes/run_<time> --probe-dataset "
    "mqformer_shapes_train [--probe-images 400] [--max-images 200] [--no-baseline]":
        "a synopsis with placeholders (tests/analysis/test_thing_error_analysis.py runs it)",
    "python demo/demo.py --config-file output/exemplars/run_X/attention_seed42/config.yaml --input scene.png "
    "--output vis/ --exemplar \"part 4711=a.png:10,20,60,70\" --exemplar \"part 4711=b.png:0,0,40,40\" "
    "--task instance --opts MODEL.WEIGHTS output/exemplars/run_X/attention_seed42/model_final.pth":
        "needs an exemplar-stage run (tests/exemplars/test_demo_exemplars.py runs --exemplar on a random model)",
    ".venv/bin/python tools/train_matting.py --output-dir output/matting/refiner":
        LONG + " (tests/matting/test_matting_refiner.py trains the refinement on a tiny split)",
    ".venv/bin/python demo/demo.py --config-file output/shapes/run_<time>/config.yaml --input photo.png "
    "--output mattes/ --prompts \"the red circle;the blue square\" --separator \";\" --matting --cpu --opts "
    "MODEL.WEIGHTS output/shapes/run_<time>/model_final.pth MODEL.MQFORMER.MATTING.WEIGHTS "
    "output/matting/refiner/refiner_final.pth":
        "needs the main job's trained run (tests/engine/test_engine_predictor_matting.py runs --matting on a tiny model)",
}


def documented_commands():
    """The shell commands of the docs' bash blocks, in order: continuation lines joined, comment
    lines and `#` comments dropped, whitespace normalised."""
    commands = []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc)) as f:
            text = f.read()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" # ")[0] if not line.lstrip().startswith("#") else ""
                if line.strip():
                    commands.append(" ".join(line.split()))
    return commands


def test_every_documented_command_is_listed():
    documented = documented_commands()
    assert [c for c in documented if c not in COMMANDS] == []
    assert [c for c in COMMANDS if c not in documented] == []  # nothing stale


def run_command(command: str) -> None:
    """Run one documented command in-process, shortened: train_net.py gets the tiny test model
    and 2 iterations appended, the demo the same model options, the tools nothing."""
    argv = shlex.split(command)
    assert argv[0] == "python", command
    script, args = argv[1], argv[2:]
    if script == "train_net.py":
        load_train_net().main(train_net_args(*args, *SHORT))
    elif script == "demo/demo.py":
        load_script(script).main([*args, *map(str, TINY_OPTIONS)])  # after --opts
    else:
        load_script(script).run(args)


@pytest.fixture
def workspace(tmp_path, tiny_shapes, monkeypatch):
    """A scratch folder holding the repository's configs/ and the example dataset, as cwd."""
    os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")
    for split in ("train", "val"):
        write_coco_instances(str(tmp_path / "datasets" / "my_parts"), json_name=f"{split}.json")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    monkeypatch.setenv(REGISTER_MODULES_ENV, "")  # restored afterwards, also when the code sets it
    yield tmp_path
    forget_module(str(tmp_path / "configs" / "custom" / "register_parts.py"), EXAMPLE_NAMES)
    forget_module(EXAMPLE_MODULE, EXAMPLE_NAMES)


def test_the_runnable_commands_run_as_written(workspace):
    runnable = [c for c in documented_commands() if COMMANDS.get(c, "") is None]
    assert len(runnable) == 5
    for command in runnable:  # in document order: the evaluation and the demo use the training's output
        try:
            run_command(command)
        except Exception as error:
            raise AssertionError(f"documented command failed: {command}") from error
    assert (workspace / "output" / "tiny_cpu" / "model_final.pth").is_file()
    assert (workspace / "output" / "my_parts" / "model_final.pth").is_file()
    assert any(name.startswith("eval_") for name in os.listdir(workspace / "output" / "my_parts"))
    assert sorted(os.listdir(workspace / "vis" / "my_parts")) == ["img0.png", "img1.png"]
    assert (workspace / "synthetic" / "shapes_captions.json").is_file()
