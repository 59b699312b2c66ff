"""The custom evaluators in a 2-process (gloo, CPU) run: records are gathered on the main process,
which alone returns metrics; a process that saw no input still takes part."""
import os
import socket
import sys

from detectron2.engine import launch
from detectron2.utils import comm

TESTS = os.path.dirname(os.path.abspath(__file__))


def _worker(result_file):
    sys.path.insert(0, TESTS)
    import evaluation_cases as cases
    from mqformer_d2.evaluation import ForegroundEvaluator, ReferringEvaluator, annotation_mask

    referring = ReferringEvaluator("two_process_refs")
    referring.reset()
    if comm.get_rank() == 0:  # the other process sees no image
        small = annotation_mask(cases.REFERRING_SMALL, cases.REFERRING_H, cases.REFERRING_W, "test")
        referring.process([cases.referring_input(1, [cases.REFERRING_SMALL, cases.REFERRING_LARGE])],
                          [cases.referring_predictions(small)])
    foreground = ForegroundEvaluator("two_process_fg", normalize=False)
    foreground.reset()
    foreground.process([{"image_id": comm.get_rank(), "height": 2, "width": 3,
                         "annotations": [cases.FOREGROUND_ANNOTATION]}], [{"sem_seg": cases.FOREGROUND_MAP}])
    results = (referring.evaluate(), foreground.evaluate())
    if comm.is_main_process():
        with open(result_file, "w") as f:
            f.write(repr((results[0]["referring"]["num_sentences"], results[1]["foreground"]["num_images"])))
    else:
        assert results == ({}, {})


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_gather_on_main(tmp_path):
    result_file = str(tmp_path / "results.txt")
    launch(_worker, 2, dist_url=f"tcp://127.0.0.1:{_free_port()}", args=(result_file,))
    with open(result_file) as f:
        assert f.read() == "(3, 2)"
