#!/usr/bin/env python
"""`make demo`: draw what the newest main-job run predicts, for every task, on validation images of
the synthetic benchmark and on one natural photograph (matplotlib's sample `grace_hopper.jpg`).

    .venv/bin/python tools/demo_shapes.py [--run-dir output/shapes/run_<time>] [--images 2] \
        [--output-dir DIR] [--readme-images docs/images]

The run is the newest `output/shapes/run_*/` holding `model_final.pth` (made by `make train`);
its `config.yaml` builds the model. Every image is drawn for each task (instance, detection,
semantic, panoptic, referring, foreground) and for all of them side by side, into a new
`output/demo/<time>/` as `<image>_<task>.png`; the log says how many objects each drawing shows.
Prompts: the benchmark's panoptic vocabulary (its stuff classes marked as stuff); referring: the
validation image's own sentences (the photo gets those of the first image); foreground: the
benchmark's foreground prompt. `--readme-images DIR` also writes the two pictures the README
shows (a validation image and the photo, every task side by side) into DIR as small PNGs.
"""
import argparse
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
logger = logging.getLogger("demo_shapes")
PANOPTIC_SET = "mqformer_shapes_val_panoptic"
REFERRING_SET = "mqformer_shapes_val_referring"
FOREGROUND_SET = "mqformer_shapes_val_foreground"
TASKS = ("instance", "detection", "semantic", "panoptic", "referring", "foreground", "all")
PHOTO = "grace_hopper.jpg"  # shipped with matplotlib (mpl-data/sample_data)
README_NAMES = ("demo_shapes_val.png", "demo_photo.png")
README_WIDTH = 640  # pixels of the README pictures


def parse_args(argv=None) -> argparse.Namespace:
    from mqformer_d2.registration import add_register_module_argument, import_registration_modules

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=None, help="a main-job run (default: the newest output/shapes/run_*)")
    parser.add_argument("--images", type=int, default=2, help="validation images drawn (default 2)")
    parser.add_argument("--output-dir", default=None, help="default: a new output/demo/<time>/")
    parser.add_argument("--threshold", type=float, default=0.5, help="instance score / foreground threshold")
    parser.add_argument("--readme-images", default=None, metavar="DIR",
                        help=f"also write the README's pictures {', '.join(README_NAMES)} into DIR")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even where torch sees a GPU")
    add_register_module_argument(parser)
    args = parser.parse_args(argv)
    import_registration_modules(args.register_module)
    return args


def newest_run(parent: str = os.path.join(ROOT, "output", "shapes")) -> str:
    """The newest main-job run under `parent` (`mqformer_d2.experiments.runs.newest_run`)."""
    from mqformer_d2.experiments.runs import newest_run as newest

    return newest(parent)


def photo_file() -> str:
    """The natural photograph shipped with matplotlib."""
    from matplotlib import cbook

    return str(cbook.get_sample_data(PHOTO, asfileobj=False))


def demo_images(count: int) -> List[Dict]:
    """The first `count` validation images of the benchmark's panoptic split, each with its
    referring sentences, then the photo (with the first image's sentences)."""
    from detectron2.data import DatasetCatalog

    sentences: Dict[str, List[str]] = {}
    for record in DatasetCatalog.get(REFERRING_SET):
        texts = [a["texts"][0] for a in record.get("annotations", []) if a.get("texts")]
        sentences.setdefault(os.path.basename(record["file_name"]), texts)
    images = []
    for record in DatasetCatalog.get(PANOPTIC_SET)[:count]:
        name = os.path.basename(record["file_name"])
        images.append({"file": record["file_name"], "name": "val_" + os.path.splitext(name)[0],
                       "sentences": sentences.get(name, [])[:3]})
    fallback = next((i["sentences"] for i in images if i["sentences"]), ["the largest shape"])
    images.append({"file": photo_file(), "name": "photo", "sentences": fallback})
    return images


def task_prompts(task: str, image: Dict, vocabulary: Sequence[str], foreground: Sequence[str]) -> List[str]:
    """The prompts an image is drawn with for `task`."""
    if task == "referring":
        return list(image["sentences"]) or list(vocabulary[:1])
    if task == "foreground":
        return list(foreground)
    return list(vocabulary)


def build_predictor(run_dir: str, cpu: bool):
    """MQFormerPredictor of the run's config and final checkpoint."""
    import torch

    from mqformer_d2.engine import MQFormerPredictor, build_config

    device = "cuda" if torch.cuda.is_available() and not cpu else "cpu"
    cfg = build_config(os.path.join(run_dir, "config.yaml"),
                       ["MODEL.WEIGHTS", os.path.join(run_dir, "model_final.pth"), "MODEL.DEVICE", device])
    return MQFormerPredictor(cfg)


def draw_all(predictor, images: Sequence[Dict], output_dir: str, threshold: float) -> Dict[str, int]:
    """Draw every image for every task into `output_dir`; {file name: objects drawn}. For the
    task "all" the referring panel uses the image's sentences, the others the vocabulary."""
    import cv2
    from detectron2.data import MetadataCatalog

    from mqformer_d2.engine.visualization import draw_image_file
    from mqformer_d2.modeling.meta_arch.vocabulary import stuff_prompts

    metadata = MetadataCatalog.get(PANOPTIC_SET)
    vocabulary, stuff = list(metadata.text_prompts), sorted(stuff_prompts(metadata))
    foreground = list(MetadataCatalog.get(FOREGROUND_SET).text_prompts)
    counts = {}
    for image in images:
        for task in TASKS:
            prompts = task_prompts(task, image, vocabulary, foreground)
            drawing = draw_image_file(predictor, image["file"], prompts, task, threshold, stuff if task in ("panoptic", "all") else ())
            name = f"{image['name']}_{task}.png"
            if not cv2.imwrite(os.path.join(output_dir, name), drawing.image[:, :, ::-1]):
                raise OSError(f"could not write {os.path.join(output_dir, name)}")
            counts[name] = drawing.objects
    return counts


def write_readme_images(output_dir: str, images: Sequence[Dict], folder: str) -> List[str]:
    """The README's two pictures (the first validation image and the photo, task "all"), scaled
    to README_WIDTH pixels wide and reduced to a 256-colour palette so they stay small."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    written = []
    for image, name in zip((images[0], images[-1]), README_NAMES):
        picture = Image.open(os.path.join(output_dir, f"{image['name']}_all.png")).convert("RGB")
        height = round(picture.height * README_WIDTH / picture.width)
        picture = picture.resize((README_WIDTH, height), Image.LANCZOS).quantize(256)
        written.append(os.path.join(folder, name))
        picture.save(written[-1], optimize=True)
    return written


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Run the demo; returns the output folder."""
    args = parse_args(argv)
    from detectron2.utils.logger import setup_logger

    from mqformer_d2.engine.run_dirs import claim_dir, claim_timestamped_dir

    setup_logger(name="demo_shapes")
    setup_logger(name="mqformer_d2")
    run_dir = args.run_dir or newest_run()
    output_dir = claim_dir(args.output_dir) if args.output_dir else claim_timestamped_dir(
        os.path.join(ROOT, "output", "demo"), "")
    logger.info("drawing the predictions of %s into %s", run_dir, output_dir)
    images = demo_images(args.images)
    counts = draw_all(build_predictor(run_dir, args.cpu), images, output_dir, args.threshold)
    empty = sorted(name for name, count in counts.items() if count == 0)
    if empty:
        logger.warning("%d of %d drawings show nothing: %s", len(empty), len(counts), ", ".join(empty))
    if args.readme_images:
        logger.info("README pictures: %s", ", ".join(write_readme_images(output_dir, images, args.readme_images)))
    logger.info("wrote %d drawings to %s", len(counts), output_dir)
    return output_dir


if __name__ == "__main__":
    main(sys.argv[1:])
