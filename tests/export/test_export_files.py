"""Export folders: what is written, what is refused, and errors that name the file or key at fault."""
import json
import os

import numpy as np
import pytest
import torch
from export_vocabulary import EXPORT_VOCABULARY

from mqformer_d2.export import ExportedVocabulary, ExportFiles, export_model
from mqformer_d2.export.exporter import ExportError
from mqformer_d2.export.runtime import ExportedModel


def test_export_folder_holds_graph_settings_and_embeddings(onnx_export):
    cfg, model, files = onnx_export
    assert sorted(os.listdir(files.folder)) == ["export.json", "model.onnx", "text_embeddings.npy"]
    loaded = ExportFiles.load(files.folder)
    assert loaded.vocabulary.names == EXPORT_VOCABULARY
    assert loaded.vocabulary.is_thing == [True, True, True, False]
    with torch.no_grad():
        expected = model.text_encoder(EXPORT_VOCABULARY, use_templates=True).numpy()
    np.testing.assert_allclose(loaded.vocabulary.embeddings, expected, rtol=0, atol=1e-6)
    assert loaded.input_format == cfg.INPUT.FORMAT and loaded.size_divisibility == model.size_divisibility
    assert loaded.postprocess == model.postprocess_settings


def test_existing_output_is_refused_and_kept(tiny_model, tmp_path):
    cfg, model = tiny_model
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="taken"):
        export_model(model, cfg, ["cat"], str(folder))
    assert os.listdir(folder) == ["mine.txt"]


def test_empty_vocabulary_is_refused(tiny_model, tmp_path):
    cfg, model = tiny_model
    with pytest.raises(ValueError, match="empty"):
        export_model(model, cfg, [], str(tmp_path / "new"))
    assert not os.path.exists(tmp_path / "new")


def test_a_failed_export_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    cfg, model = tiny_model

    def fail(*args, **kwargs):
        raise RuntimeError("no")
    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(ExportError, match="ONNX export failed"):
        export_model(model, cfg, ["cat"], str(tmp_path / "new"))
    assert os.listdir(tmp_path) == []


def test_a_model_that_is_not_mqformer_is_refused(tiny_model, tmp_path):
    cfg, _ = tiny_model
    with pytest.raises(ExportError, match="only MQFormer"):
        export_model(torch.nn.Linear(2, 2), cfg, ["cat"], str(tmp_path / "new"))


def test_unknown_prompts_name_the_exported_vocabulary(onnx_export):
    model = ExportedModel(onnx_export[2].folder)
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    with pytest.raises(KeyError, match="'purple moon'.*were not exported"):
        model([{"image": image, "vocabulary": ["red star", "purple moon"]}])


def _copy(files, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in os.listdir(files.folder):
        (folder / name).write_bytes(open(os.path.join(files.folder, name), "rb").read())
    return folder


def test_broken_folders_name_the_file_or_key(onnx_export, tmp_path):
    folder = _copy(onnx_export[2], tmp_path)
    settings = json.loads((folder / "export.json").read_text())
    del settings["vocabulary"]
    (folder / "export.json").write_text(json.dumps(settings))
    with pytest.raises(KeyError, match=r"export.json lacks the keys \['vocabulary'\]"):
        ExportFiles.load(str(folder))
    os.remove(folder / "export.json")
    with pytest.raises(FileNotFoundError, match="not an export folder"):
        ExportFiles.load(str(folder))


def test_embeddings_are_read_without_pickle(onnx_export, tmp_path):
    folder = _copy(onnx_export[2], tmp_path)
    np.save(folder / "text_embeddings.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        ExportFiles.load(str(folder))


def test_vocabulary_checks():
    embeddings = np.zeros((2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="empty"):
        ExportedVocabulary([], [], embeddings[:0])
    with pytest.raises(ValueError, match="repeats"):
        ExportedVocabulary(["a", "a"], [True, True], embeddings)
    with pytest.raises(ValueError, match="2 names, 1 thing flags"):
        ExportedVocabulary(["a", "b"], [True], embeddings)
    vocabulary = ExportedVocabulary(["a", "b"], [True, False], np.arange(8, dtype=np.float32).reshape(2, 4))
    np.testing.assert_array_equal(vocabulary.select(["b", "a"]), [[4, 5, 6, 7], [0, 1, 2, 3]])


def test_torchscript_export_takes_its_traced_size_only(tiny_model, tmp_path):
    cfg, model = tiny_model
    files = export_model(model, cfg, ["cat", "dog"], str(tmp_path / "ts"), "torchscript")
    assert files.fixed_input_size == [64, 64]
    exported = ExportedModel(files.folder)
    image = torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
    result = exported([{"image": image, "task": "semantic"}])[0]
    with torch.no_grad():
        expected = model([{"image": image, "vocabulary": ["cat", "dog"], "task": "semantic"}])[0]
    assert (result["sem_seg"] - expected["sem_seg"]).abs().max() <= 1e-4
    with pytest.raises(ValueError, match=r"traced for padded inputs of \[64, 64\]"):
        exported([{"image": torch.zeros(3, 96, 64, dtype=torch.uint8)}])
