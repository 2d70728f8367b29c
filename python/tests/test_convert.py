"""`picoformer.convert`: the CLI's converter, the same files and the report's figures."""
import pytest

import picoformer
from conftest import MODELS, cases


def test_convert_writes_the_committed_blob(tmp_path):
    out = tmp_path / "japanese-vowels.pico"
    f = picoformer.convert(MODELS / "japanese-vowels/export", out)
    committed = MODELS / "japanese-vowels"
    assert out.read_bytes() == (committed / "japanese-vowels.pico").read_bytes()
    assert (tmp_path / "japanese-vowels.vectors.bin").read_bytes() == (committed / "japanese-vowels.vectors.bin").read_bytes()
    assert f["blob_bytes"] == out.stat().st_size
    assert f["arena_bytes"] == picoformer.Model(out).arena_bytes() == 15656
    assert f["reference_max_diff"] < 1e-4
    assert f["calibration"] == "270 feature windows"
    assert (f["test_windows"], f["labels"]) == (370, 370)
    assert f["correct_int8"] > 0.9 * 370 and f["agree"] > 0.95 * 370
    assert "beam" not in f
    report = (tmp_path / "japanese-vowels.report.md").read_text()
    assert f"{f['correct_int8']}/370" in report and f"| RAM: arena | {f['arena_bytes']} B" in report
    assert f["report"] == tmp_path / "japanese-vowels.report.md"


def test_convert_a_variant_as_the_cli(tmp_path, cli):
    """A decoder-only export without files beside it, calibrated on given texts."""
    export = MODELS / "variants/dec_gqa_rope_rmsnorm_swiglu"
    calib = MODELS / "captions-lm/calib.en"
    f = picoformer.convert(export, tmp_path / "py.pico", calib=calib, calib_count=20, vectors=3,
                           layer_sentences=5)
    cli("convert", export, "--out", tmp_path / "cli.pico", "--calib", calib, "--calib-count", 20,
        "--vectors", 3, "--layer-sentences", 5)
    for ext in ("pico", "vectors.bin", "vectors.safetensors"):
        assert (tmp_path / f"py.{ext}").read_bytes() == (tmp_path / f"cli.{ext}").read_bytes(), ext
    assert f["calibration"] == "20 texts (teacher-forced)"
    assert f["reference_max_diff"] < 1e-4 and f["beam"] == 4
    assert f["arena_bytes_beam"] > f["arena_bytes"] > 0
    assert "perplexity_int8" not in f  # no test set
    m = picoformer.Model(tmp_path / "py.pico")
    assert m.kind == "decoder-only" and m.config["n_kv_heads"] == 2
    prompts = (MODELS / "captions-lm/calib.en").read_text().split("\n")[:-1][:3]
    for p, case in zip(prompts, cases(tmp_path / "py.vectors.safetensors"), strict=True):
        assert m.generate_ids(m.prompt_ids(p), 20) == case["greedy"]


def test_convert_errors(tmp_path):
    export = MODELS / "japanese-vowels/export"
    with pytest.raises(picoformer.Error, match="--flash-budget 1000: even with every weight matrix int4 the blob is 35720 bytes"):
        picoformer.convert(export, tmp_path / "a.pico", flash_budget=1000)
    with pytest.raises(picoformer.Error, match="no-such.csv: not found"):
        picoformer.convert(export, tmp_path / "b.pico", calib=tmp_path / "no-such.csv")
    with pytest.raises(picoformer.Error, match="config.json"):
        picoformer.convert(tmp_path, tmp_path / "c.pico")


def test_convert_fits_a_flash_budget(tmp_path):
    """`flash_budget` is the CLI's --flash-budget: the cheapest weight matrices become int4."""
    export = MODELS / "japanese-vowels/export"
    f = picoformer.convert(export, tmp_path / "fit.pico", flash_budget=45000)
    assert f["blob_bytes"] <= 45000 < 54656
    assert "int4" in (tmp_path / "fit.report.md").read_text()
    assert picoformer.Model(tmp_path / "fit.pico").arena_bytes() == 15656
