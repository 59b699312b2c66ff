"""The registration hook: --register-module / $MQFORMER_REGISTER_MODULES make a user's datasets
visible to train_net.py, the demo and every tool (and to processes they start), and the example
in configs/custom/ trains and evaluates as docs/usage.md walks through it."""
import os
import subprocess
import sys

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from detectron2_format_fixtures import write_coco_instances
from helpers import ROOT, TINY_OPTIONS, load_script, load_train_net, train_net_args
from mqformer_d2.registration import REGISTER_MODULES_ENV, import_registration_modules

torch.set_num_threads(2)
EXAMPLE_MODULE = os.path.join(ROOT, "configs", "custom", "register_parts.py")
EXAMPLE_CONFIG = os.path.join(ROOT, "configs", "custom", "mqformer_parts.yaml")
EXAMPLE_NAMES = ("my_parts_train", "my_parts_val")


def write_my_parts(datasets_root: str) -> None:
    """The example's files: my_parts/{train,val}.json and my_parts/images/ under `datasets_root`."""
    for split in ("train", "val"):
        write_coco_instances(os.path.join(datasets_root, "my_parts"), json_name=f"{split}.json")


def forget_module(path: str, names) -> None:
    """Undo an import of registration module `path`: unregister `names`, drop it from sys.modules."""
    for name in names:
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
    for key in [k for k, m in sys.modules.items() if getattr(m, "__file__", None) == os.path.abspath(path)]:
        del sys.modules[key]


@pytest.fixture
def my_parts(tmp_path, monkeypatch):
    """The example dataset on disk, $DETECTRON2_DATASETS pointing at it; the example module's
    registrations are undone afterwards."""
    write_my_parts(str(tmp_path / "datasets"))
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.setenv(REGISTER_MODULES_ENV, "")  # restored afterwards, also when the code sets it
    yield tmp_path
    forget_module(EXAMPLE_MODULE, EXAMPLE_NAMES)


def test_the_custom_example_trains_and_evaluates_through_train_net(my_parts):
    assert "my_parts_train" not in DatasetCatalog.list()
    results = load_train_net().main(train_net_args(
        "--config-file", EXAMPLE_CONFIG, "--register-module", EXAMPLE_MODULE, *TINY_OPTIONS,
        "SOLVER.MAX_ITER", 2, "OUTPUT_DIR", my_parts / "run"))
    assert set(results) == {"bbox", "segm"}
    assert MetadataCatalog.get("my_parts_val").text_prompts == ["red square", "blue bar"]
    assert os.environ[REGISTER_MODULES_ENV] == EXAMPLE_MODULE  # what spawned workers import


def test_a_dotted_module_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "user_pkg").mkdir()
    (tmp_path / "user_pkg" / "__init__.py").write_text("")
    (tmp_path / "user_pkg" / "datasets.py").write_text(
        "from detectron2.data import DatasetCatalog\nDatasetCatalog.register('user_pkg_set', lambda: [])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(REGISTER_MODULES_ENV, " user_pkg.datasets ,")
    try:
        modules = import_registration_modules()
        assert [m.__name__ for m in modules] == ["user_pkg.datasets"]
        assert "user_pkg_set" in DatasetCatalog.list()
        import_registration_modules(["user_pkg.datasets"])  # imported once: no "already registered"
    finally:
        DatasetCatalog.remove("user_pkg_set")
        sys.modules.pop("user_pkg.datasets", None)
        sys.modules.pop("user_pkg", None)


@pytest.mark.parametrize("entry, message", [
    ("no_such_pkg.datasets", "'no_such_pkg.datasets' is not importable.*PYTHONPATH.*\\.py file"),
    ("missing/register.py", "'missing/register.py': no such file"),
])
def test_a_module_that_cannot_be_imported_is_named(entry, message, monkeypatch):
    monkeypatch.setenv(REGISTER_MODULES_ENV, "")  # restored afterwards, also when the code sets it
    with pytest.raises(ImportError, match=message):
        import_registration_modules([entry])


def test_a_new_process_imports_the_modules_of_the_environment(my_parts):
    """As a worker spawned by --num-gpus does: importing mqformer_d2 imports the named modules."""
    env = dict(os.environ, **{REGISTER_MODULES_ENV: EXAMPLE_MODULE, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT})
    code = "import mqformer_d2; from detectron2.data import DatasetCatalog; print('my_parts_val' in DatasetCatalog.list())"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(my_parts), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("script, parser", [
    ("demo/demo.py", "argument_parser"),
    ("tools/convert_weights.py", "parse_args"),
    ("tools/query_ablation.py", "parse_args"),
    ("tools/synthesize_captions.py", "argument_parser"),
    ("tools/synthesize_masks.py", "argument_parser"),
    ("tools/synthetic_data_experiment.py", "parse_args"),
    ("tools/thing_error_analysis.py", "parse_args"),
])
def test_every_entry_point_offers_the_option(script, parser, capsys):
    function = getattr(load_script(script), parser)
    with pytest.raises(SystemExit):
        (function().parse_args if parser == "argument_parser" else function)(["--help"])
    assert "--register-module MODULE" in capsys.readouterr().out


def test_main_job_offers_the_option(capsys):
    """tools/train_shapes.py hands its arguments to the experiments package's main job."""
    from mqformer_d2.experiments import main_job

    with pytest.raises(SystemExit):
        main_job.parse_args(["--help"])
    assert "--register-module MODULE" in capsys.readouterr().out


def test_train_net_offers_the_option(capsys):
    with pytest.raises(SystemExit):
        train_net_args("--help")
    assert "--register-module MODULE" in capsys.readouterr().out
