"""Benchmark the ONNX export in onnxruntime against the PyTorch model on CPU, same images, same threads.

    .venv/bin/python benchmarks/export.py prepare --output DIR [--run-dir RUN]
    .venv/bin/python benchmarks/export.py run --dir DIR --model tiny|r50 --backend pytorch|onnx \
        [--images 10] [--threads 2]

`prepare` writes two models into the new folder DIR, each as its weights (model.pth) and its ONNX
export (onnx/): "tiny", the main-job model of RUN (default: the newest output/shapes/run_*) with
the benchmark's vocabulary, at its 128-pixel test size; "r50", configs/mqformer_R50.yaml with
random weights and the 133 COCO panoptic names, at 800x1216. `run` loads one of them in one
backend and predicts `--images` random BGR images of that size (seeded, the same for both
backends) after one warm-up image; it prints one JSON line: the median milliseconds per image of
the graph alone (image -> raw predictions, text embeddings precomputed in both backends) and of the
whole prediction (resize, graph, post-processing to instances at the image's size). Timing whole
processes side by side (one backend against the other, in turn) is how docs/benchmarks.md reports
it.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from detectron2.modeling import build_model

import mqformer_d2  # noqa: F401  (registers the model and the built-in datasets)
from mqformer_d2.checkpoint import MQFormerCheckpointer
from mqformer_d2.data.datasets import clean_class_names
from mqformer_d2.engine import build_config
from mqformer_d2.experiments.export_parity import export_vocabulary
from mqformer_d2.experiments.runs import newest_run
from mqformer_d2.export import ExportableMQFormer, export_model
from mqformer_d2.export.graph import pad_to_multiple
from mqformer_d2.export.runtime import ExportedModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {"tiny": (128, 128), "r50": (800, 1216)}
TINY_DATASETS = ["mqformer_shapes_val_instance", "mqformer_shapes_val_panoptic"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare")
    prepare.add_argument("--output", required=True)
    prepare.add_argument("--run-dir", default=None)
    run = sub.add_parser("run")
    run.add_argument("--dir", required=True)
    run.add_argument("--model", choices=sorted(SIZES), required=True)
    run.add_argument("--backend", choices=("pytorch", "onnx"), required=True)
    run.add_argument("--images", type=int, default=10)
    run.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def model_configs(run_dir):
    """{name: (config file, overrides, vocabulary, stuff)}."""
    tiny_texts, tiny_stuff = export_vocabulary(TINY_DATASETS)
    coco = [c for c in COCO_CATEGORIES]
    coco_texts = clean_class_names(c["name"] for c in coco)
    coco_stuff = [t for t, c in zip(coco_texts, coco) if not c["isthing"]]
    return {
        "tiny": (os.path.join(run_dir, "config.yaml"), ["MODEL.WEIGHTS", os.path.join(run_dir, "model_final.pth")],
                 tiny_texts, tiny_stuff),
        "r50": (os.path.join(ROOT, "configs", "mqformer_R50.yaml"), [], coco_texts, coco_stuff),
    }


def prepare(output: str, run_dir: str) -> None:
    os.makedirs(output)
    for name, (config_file, overrides, texts, stuff) in model_configs(run_dir).items():
        torch.manual_seed(0)
        cfg = build_config(config_file, overrides, cpu=True)
        model = build_model(cfg).eval()
        if cfg.MODEL.WEIGHTS:
            MQFormerCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        folder = os.path.join(output, name)
        os.makedirs(folder)
        torch.save({"model": model.state_dict()}, os.path.join(folder, "model.pth"))
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump({"config_file": config_file, "overrides": overrides}, f)
        height, width = SIZES[name]
        sample = np.random.RandomState(0).randint(0, 256, (height, width, 3), dtype=np.uint8)
        export_model(model, cfg, texts, os.path.join(folder, "onnx"), sample_image=sample, stuff=stuff)


def images(name: str, count: int):
    height, width = SIZES[name]
    rng = np.random.RandomState(1)
    return [rng.randint(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count + 1)]


def timed(function, inputs):
    """Median milliseconds of function(x) over inputs[1:] (inputs[0] warms up)."""
    times = []
    for index, x in enumerate(inputs):
        start = time.perf_counter()
        function(x)
        if index:
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def run(folder: str, name: str, backend: str, count: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    exported = ExportedModel(os.path.join(folder, name, "onnx"), num_threads=threads)
    files = exported.files
    resize = T.ResizeShortestEdge([files.min_size_test] * 2, files.max_size_test)
    texts = files.vocabulary.names

    def model_input(image):
        resized = resize.get_transform(image).apply_image(image)
        return {"image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))),
                "height": image.shape[0], "width": image.shape[1], "task": "instance", "vocabulary": texts}
    inputs = [model_input(image) for image in images(name, count)]
    if backend == "onnx":
        def graph(x):
            exported.raw_outputs(x["image"], texts)
        whole = exported
    else:
        with open(os.path.join(folder, name, "config.json")) as f:
            spec = json.load(f)
        cfg = build_config(spec["config_file"], [], cpu=True)  # weights: model.pth below
        model = build_model(cfg).eval()
        model.load_state_dict(torch.load(os.path.join(folder, name, "model.pth"), weights_only=True)["model"])
        module = ExportableMQFormer(model).eval()
        embeddings = torch.from_numpy(files.vocabulary.embeddings)
        model.set_vocabulary(texts)

        def graph(x):
            image = x["image"][None].float()
            module(pad_to_multiple(image, module.size_divisibility), torch.tensor(image.shape[-2:]), embeddings)
        whole = model
    with torch.no_grad():
        graph_ms = timed(graph, inputs)
        whole_ms = timed(lambda x: whole([x]), inputs)
    return {"model": name, "backend": backend, "images": count, "threads": threads, "size": SIZES[name],
            "graph_ms": round(graph_ms, 1), "whole_ms": round(whole_ms, 1)}


def main(argv=None):
    args = parse_args(argv)
    if args.command == "prepare":
        prepare(args.output, args.run_dir or newest_run(os.path.join(ROOT, "output", "shapes")))
    else:
        print(json.dumps(run(args.dir, args.model, args.backend, args.images, args.threads)))


if __name__ == "__main__":
    main()
