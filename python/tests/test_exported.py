"""The committed exports of python/tests/data (written by `picoformer.export` from user-style
PyTorch modules, torch_models.py) convert and run without torch: the converter's f32 forward
pass matches the modules' own reference vectors, and the int8 models run as the CLI runs them."""
from pathlib import Path

import pytest

import picoformer
from conftest import MODELS, read_windows

DATA = Path(__file__).resolve().parent / "data"
TEXTS = ["Ein Hund läuft über die Wiese.", "Zwei Männer spielen Fußball.", "A girl is reading a book."]


def convert(tmp_path, name, **kw):
    return picoformer.convert(DATA / name, tmp_path / f"{name}.pico", vectors=3, layer_sentences=5, **kw)


def test_translator(tmp_path, cli):
    f = convert(tmp_path, "translator", calib=MODELS / "de-en/calib.de", calib_tgt=MODELS / "de-en/calib.en",
                calib_count=50)
    assert f["reference_max_diff"] < 1e-4
    assert f["config"].startswith("encoder-decoder: d_model 32, 4 heads, 1 encoder + 2 decoder layers, FFN 64 (gelu)")
    m = picoformer.Model(tmp_path / "translator.pico")
    ours = [m.translate(t) for t in TEXTS]
    assert ours == cli("translate", "--model", tmp_path / "translator.pico", *TEXTS).split("\n")[:-1]
    assert all(len(m.translate_ids(m.source_ids(t))) > 0 for t in TEXTS)


def test_frame_classifier(tmp_path, cli):
    csv = DATA / "frame-classifier.csv"
    f = convert(tmp_path, "frame-classifier", calib=csv)
    assert f["reference_max_diff"] < 1e-4 and f["calibration"] == "12 feature windows"
    assert "post-norm" in f["config"] and "Mean pooling, Classification head of 3" in f["config"]
    m = picoformer.Model(tmp_path / "frame-classifier.pico")
    windows = read_windows(csv)
    out = cli("classify", "--model", tmp_path / "frame-classifier.pico", "--export", DATA / "frame-classifier", csv).split("\n")[:-1]
    assert [f"{i}: class {m.classify(w)} ({'abc'[m.classify(w)]})" for i, w in enumerate(windows)] == [line.split("  [")[0] for line in out]


def test_tiny_lm(tmp_path, cli):
    f = convert(tmp_path, "tiny-lm", calib=MODELS / "captions-lm/calib.en", calib_count=50)
    assert f["reference_max_diff"] < 1e-4
    assert f["config"].startswith("decoder-only: d_model 32, 2 heads, 2 decoder layers, FFN 64 (gelu_tanh)")
    assert "Learned positions" in f["config"] and "untied embeddings" in f["config"]
    m = picoformer.Model(tmp_path / "tiny-lm.pico")
    prompts = ["a dog", "two men are"]
    ours = [p + m.generate(p, max_new=8) for p in prompts]
    assert ours == cli("generate", "--model", tmp_path / "tiny-lm.pico", "--max-new", 8, *prompts).split("\n")[:-1]


@pytest.mark.parametrize("name", ["translator", "frame-classifier", "tiny-lm"])
def test_exports_are_complete(name):
    files = sorted(p.name for p in (DATA / name).iterdir())
    want = ["config.json", "model.safetensors", "reference.safetensors"]
    assert files == (want if name == "frame-classifier" else sorted(want + ["tokenizer.model"]))
