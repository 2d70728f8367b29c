"""`picoformer.export` from live PyTorch modules (skipped without torch): it writes the
committed exports of python/tests/data byte for byte, and refuses a mapping that does not
reproduce the module's own forward pass."""
import filecmp

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")
pytest.importorskip("safetensors")

import picoformer  # noqa: E402
import torch_models as tm  # noqa: E402


def test_export_writes_the_committed_exports(tmp_path):
    dirs = tm.export_all(tmp_path)
    for name, d in dirs.items():
        committed = tm.DATA / name
        files = sorted(p.name for p in committed.iterdir())
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == files
        for f in files:
            assert filecmp.cmp(tmp_path / name / f, committed / f, shallow=False), f"{name}/{f}"


def test_export_checks_the_modules_forward(tmp_path):
    lm = tm.randomize(tm.TinyLM(1000), 4)
    # the module adds learned positions; exported without them its forward pass differs
    with pytest.raises(picoformer.Error, match="differs from the export's"):
        picoformer.export(lm, tm.BPE, tmp_path / "lm", reference=["a dog"], max_len=tm.MAX_LEN, causal=True)
    tr = tm.randomize(tm.Translator(500), 1)
    with pytest.raises(picoformer.Error, match="differs from the export's"):
        picoformer.export(tr, tm.UNIGRAM, tmp_path / "tr", reference=["Ein Hund."], max_len=tm.MAX_LEN,
                          scale_embedding=False)
    with pytest.raises(picoformer.Error, match="max_len"):
        picoformer.export(tr, tm.UNIGRAM, tmp_path / "tr", reference=["Ein Hund."])
    with pytest.raises(picoformer.Error, match="no nn.Transformer"):
        picoformer.export(torch.nn.Linear(3, 3), None, tmp_path / "x")


def test_export_the_projects_own_modules(tmp_path):
    """GenericModel exports through the same code as tools/train_lm.py and tools/train_classifier.py."""
    from picoformer import generic_model as gm
    cfg = gm.make_config(model_type="encoder-only", d_model=16, nhead=2, num_layers=1, dim_feedforward=32,
                         activation="swiglu", norm="rmsnorm", positional="rope", max_len=32, input="features",
                         n_features=4, n_outputs=2)
    m = tm.randomize(gm.GenericModel(cfg), 9)
    ref = picoformer.export(m, None, tmp_path / "g", reference=tm.frames(1, 2, 4))
    assert sorted(ref) == ["hidden.0", "hidden.1", "input.0", "input.1", "output.0", "output.1"]
    csv = tmp_path / "calib.csv"
    csv.write_text("\n\n".join("\n".join(",".join(f"{v:.3f}" for v in row) for row in w) for w in tm.frames(2, 6, 4)) + "\n")
    f = picoformer.convert(tmp_path / "g", tmp_path / "g.pico", calib=csv, vectors=2, layer_sentences=2)
    assert f["reference_max_diff"] < 1e-4
