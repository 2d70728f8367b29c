"""Every model kind in process against the committed test vectors and the CLI, bit for bit."""
import re

import numpy as np
import pytest

import picoformer
from conftest import MODELS, VECTORS, cases, lines, read_windows, spread


def report_figure(name, label):
    """A byte count from the committed conversion report's table."""
    text = (MODELS / name / f"{name}.report.md").read_text()
    return int(re.search(rf"\| {re.escape(label)} \| (\d+) B", text).group(1))


@pytest.fixture(scope="module")
def de_en():
    return picoformer.Model(MODELS / "de-en/de-en.pico")


@pytest.fixture(scope="module")
def lm():
    return picoformer.Model(MODELS / "captions-lm/captions-lm.pico")


def test_translator_matches_vectors_and_cli(de_en, cli):
    assert de_en.kind == "encoder-decoder"
    texts = lines(MODELS / "de-en/test2016.de", VECTORS)
    for text, case in zip(texts, cases("de-en"), strict=True):
        src = de_en.source_ids(text)
        assert src == case["src"]
        assert de_en.translate_ids(src) == case["greedy"]
    ours = [de_en.translate(t) for t in texts]
    assert ours == cli("translate", "--model", MODELS / "de-en/de-en.pico", *texts).split("\n")[:-1]
    # the converter's int8 translations of the test set, committed beside the blob
    assert ours == lines(MODELS / "de-en/de-en.int8.en", VECTORS)
    # streamed pieces join to the same line
    for t, line in zip(texts, ours):
        pieces = list(de_en.stream(t))
        assert len(pieces) > 3 and "".join(pieces) == line
    assert list(de_en.stream("   ")) == [] and de_en.translate("") == ""


def test_translator_beam_matches_cli(de_en, cli):
    texts = lines(MODELS / "de-en/test2016.de")[20:24]
    ours = [de_en.translate(t, beam=4) for t in texts]
    assert ours == cli("translate", "--beam", 4, "--model", MODELS / "de-en/de-en.pico", *texts).split("\n")[:-1]


def test_arena_bytes_are_the_reports(de_en, lm):
    assert de_en.arena_bytes() == report_figure("de-en", "RAM: arena, greedy") == 94912
    assert de_en.arena_bytes(4) == report_figure("de-en", "RAM: arena, beam width up to 4")
    assert lm.arena_bytes() == report_figure("captions-lm", "RAM: arena, greedy")
    for name in ("japanese-vowels", "basic-motions"):
        m = picoformer.Model(MODELS / name / f"{name}.pico")
        assert m.arena_bytes() == report_figure(name, "RAM: arena")


def test_language_model_matches_vectors_and_cli(lm, cli):
    assert lm.kind == "decoder-only"
    prompts = lines(MODELS / "captions-lm/prompts.txt", VECTORS)
    for p, case in zip(prompts, cases("captions-lm"), strict=True):
        ids = lm.prompt_ids(p)
        assert ids == case["src"] and ids[0] == lm.config["bos"]
        assert lm.generate_ids(ids, 20) == case["greedy"]
    path = MODELS / "captions-lm/captions-lm.pico"
    ours = [p + lm.generate(p) for p in prompts]
    assert ours == cli("generate", "--model", path, *prompts).split("\n")[:-1]
    for p, line in zip(prompts, ours):
        assert p + "".join(lm.stream(p)) == line


def test_language_model_sampling_matches_cli(lm, cli):
    prompts = lines(MODELS / "captions-lm/prompts.txt")[:4]
    path = MODELS / "captions-lm/captions-lm.pico"
    opts = dict(sample=True, seed=7, temperature=0.8, top_k=40, top_p=0.9, max_new=15)
    ours = [p + lm.generate(p, **opts) for p in prompts]
    want = cli("generate", "--model", path, "--sample", "--seed", 7, "--temperature", 0.8,
               "--top-k", 40, "--top-p", 0.9, "--max-new", 15, *prompts).split("\n")[:-1]
    assert ours == want
    assert ours != [p + lm.generate(p, max_new=15) for p in prompts]  # not the greedy lines
    for p, line in zip(prompts, ours):
        assert p + "".join(lm.stream(p, **opts)) == line
    # beam search, as the CLI's
    beam = [p + lm.generate(p, beam=3, max_new=10) for p in prompts[:2]]
    assert beam == cli("generate", "--model", path, "--beam", 3, "--max-new", 10, *prompts[:2]).split("\n")[:-1]


@pytest.mark.parametrize("name", ["japanese-vowels", "basic-motions"])
def test_classifier_matches_vectors_and_cli(name, cli):
    m = picoformer.Model(MODELS / name / f"{name}.pico")
    assert m.kind == "encoder-only" and m.config["input"] == "features"
    windows = read_windows(MODELS / name / "test.csv")
    for w, case in zip(spread(windows, VECTORS), cases(name), strict=True):
        assert m.quantize_features(np.array(w, dtype=np.float64)) == case["features"]
        assert m.outputs_raw(w) == case["logits0"]
        assert m.classify(np.array(w)) == case["greedy"][0]
    # the CLI's lines: class and outputs in real units, to 4 decimals
    out = cli("classify", "--model", MODELS / name / f"{name}.pico", MODELS / name / "test.csv").split("\n")[:-1]
    assert len(out) == len(windows)
    for i in range(0, len(windows), 7):
        line = re.match(r"(\d+): class (\d+)\S*(?: \(.*\))?  \[(.*)\]", out[i])
        assert int(line.group(1)) == i
        assert int(line.group(2)) == m.classify(windows[i])
        assert line.group(3) == ", ".join(f"{v:.4f}" for v in m.outputs(windows[i]))


def test_classifier_accuracy_is_the_reports():
    m = picoformer.Model(MODELS / "japanese-vowels/japanese-vowels.pico")
    windows = read_windows(MODELS / "japanese-vowels/test.csv")
    labels = [int(x) for x in lines(MODELS / "japanese-vowels/test.labels")]
    correct = sum(m.classify(w) == y for w, y in zip(windows, labels, strict=True))
    text = (MODELS / "japanese-vowels/japanese-vowels.report.md").read_text()
    assert f"{correct}/{len(labels)}" in text


def test_errors_are_picoformer_errors(de_en, lm, tmp_path, cli):
    with pytest.raises(picoformer.Error, match="no-such.pico"):
        picoformer.Model(tmp_path / "no-such.pico")
    bad = tmp_path / "bad.pico"
    bad.write_bytes(b"NOPE" + bytes(200))
    with pytest.raises(picoformer.Error) as e:
        picoformer.Model(bad)
    assert e.value.kind == "BadMagic"
    # the CLI's message, word for word
    r = cli("translate", "--model", MODELS / "captions-lm/captions-lm.pico", "x", check=False)
    with pytest.raises(picoformer.Error) as e:
        lm.translate("x")
    assert r.returncode == 1 and r.stderr.strip() == f"error: {e.value}"
    assert "use `picoformer generate`" in str(e.value)
    with pytest.raises(picoformer.Error) as e:
        de_en.translate_ids([5, 4000, 3])
    assert e.value.kind == "TokenOutOfRange" and "4000" in str(e.value)
    with pytest.raises(picoformer.Error, match="beam"):
        de_en.translate("Ein Hund.", beam=0)
    with pytest.raises(picoformer.Error, match="temperature"):
        lm.generate("a dog", sample=True, temperature=-1)
    with pytest.raises(picoformer.Error, match="classify"):
        de_en.classify([1.0, 2.0])
    jv = picoformer.Model(MODELS / "japanese-vowels/japanese-vowels.pico")
    with pytest.raises(picoformer.Error, match="whole frames of 12"):
        jv.classify([0.5] * 13)
    with pytest.raises(picoformer.Error, match="not text"):
        jv.classify("a text")
    with pytest.raises(picoformer.Error, match="encoder-only"):
        jv.stream("x")
    assert isinstance(picoformer.Error("x"), Exception)


def test_bert_text_classifier_matches_vectors_and_cli(cli):
    # the tiny BERT (models/bert-tiny): WordPiece text in, [CLS] ... [SEP]
    name = "bert-tiny"
    m = picoformer.Model(MODELS / name / f"{name}.pico")
    assert m.kind == "encoder-only" and m.config["input"] == "tokens"
    texts = lines(MODELS / "de-en/test2016.en")
    # a text classifier's vectors are the test set's first lines
    for t, case in zip(texts[:VECTORS], cases(name), strict=True):
        ids = m.prompt_ids(t)
        assert ids == case["src"] and ids[0] == 2 and ids[-1] == 3
        assert m.outputs_raw(text=t) == case["logits0"]
        assert m.classify(t) == case["greedy"][0]
    out = cli("classify", "--model", MODELS / name / f"{name}.pico", "--export", MODELS / "hf-tiny/bert",
              MODELS / "de-en/test2016.en").split("\n")[:-1]
    assert len(out) == len(texts)
    for i in range(0, len(texts), 97):
        line = re.match(r"(\d+): class (\d+) \((animal|person|thing)\)  \[(.*)\]", out[i])
        assert int(line.group(1)) == i and int(line.group(2)) == m.classify(texts[i])
        assert line.group(4) == ", ".join(f"{v:.4f}" for v in m.outputs(texts[i]))
