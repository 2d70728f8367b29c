//! The `picoformer` binary as a user runs it, on the committed models: what it prints on
//! stdout and stderr, and its exit code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use picoformer::Model;
use picoformer_tools::host::{pieces, read_aligned};

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

fn model() -> String {
    root().join("models/de-en/de-en.pico").display().to_string()
}

/// Run `picoformer args…` with `stdin`.
fn picoformer(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_picoformer"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `translate` of each sentence alone, from the command line.
fn alone(sentence: &str) -> String {
    let o = picoformer(&["translate", "--model", &model(), sentence], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
}

#[test]
fn an_empty_line_translates_to_an_empty_line() {
    let o = picoformer(&["translate", "--model", &model()], "Ein Hund rennt.\n\n   \nZwei Männer.\n".as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(lines[0], alone("Ein Hund rennt.").trim_end());
    assert_eq!(lines[1], "");
    assert_eq!(lines[2], "");
    assert_eq!(lines[3], alone("Zwei Männer.").trim_end());
    assert_eq!(alone(""), "\n");
    let beam = picoformer(&["translate", "--model", &model(), "--beam", "4", ""], b"");
    assert_eq!(text(&beam.stdout), "\n");
}

#[test]
fn a_line_that_is_not_utf8_is_named_and_the_others_translate() {
    let o = picoformer(&["translate", "--model", &model()], b"Ein Hund rennt.\n\xff\xfeHund\r\nZwei M\xc3\xa4nner.\r\n");
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success(), "exit code 0; stderr {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, [alone("Ein Hund rennt.").trim_end(), "", alone("Zwei Männer.").trim_end()], "{out:?}");
    assert!(err.contains("line 2: not valid UTF-8"), "{err}");
    assert!(!err.contains("line 1:") && !err.contains("line 3:"), "{err}");
}

#[test]
fn beam_width_out_of_range_is_refused() {
    for w in ["0", "17", "two"] {
        let o = picoformer(&["translate", "--model", &model(), "--beam", w, "Ein Hund."], b"");
        let err = text(&o.stderr);
        assert!(!o.status.success() && o.stdout.is_empty(), "--beam {w} accepted: {}", text(&o.stdout));
        assert!(err.contains("--beam") && err.contains("beam width is a whole number from 1 (greedy) to 16"), "--beam {w}: {err}");
    }
    let o = picoformer(&["translate", "--model", &model(), "--beam", "16", "Ein Hund."], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn a_long_source_is_cut_with_a_note() {
    let blob = read_aligned(Path::new(&model())).unwrap();
    let m = Model::parse(blob.bytes()).unwrap();
    let long = ["Ein Hund rennt durch den Schnee."; 12].join(" ");
    let all = pieces(m.tokenizer(), &long).unwrap().len();
    let keep = m.config().max_len - 1;
    assert!(all > keep, "{all} pieces");
    let o = picoformer(&["translate", "--model", &model(), &long, "Ein Hund."], b"");
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(text(&o.stdout).lines().count(), 2);
    assert_eq!(err.trim_end(), format!("note: sentence 1: {all} pieces, the model reads {keep}: the last {} dropped", all - keep));
    // a source that fits gets no note
    let o = picoformer(&["translate", "--model", &model(), "Ein Hund."], b"");
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn a_config_that_disagrees_with_the_weights_names_the_field() {
    let variant = root().join("models/variants/prenorm_relu_untied");
    let dir = std::env::temp_dir().join(format!("picoformer-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.model", "reference.safetensors"] {
        std::fs::copy(variant.join(f), dir.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(variant.join("config.json")).unwrap();
    // (the field as the variant has it, the wrong value, what the error must say)
    let cases = [
        ("\"d_model\": 32", "\"d_model\": 48", "config.json: field `d_model`: 48, but the weights imply 32"),
        ("\"dim_feedforward\": 64", "\"dim_feedforward\": 128", "config.json: field `dim_feedforward`: 128, but the weights imply 64"),
        // the tokenizer is read first, and has a vocabulary of its own
        ("\"vocab_size\": 800", "\"vocab_size\": 900", "config.json: field `vocab_size`: 900 but"),
        ("\"num_encoder_layers\": 1", "\"num_encoder_layers\": 2", "config.json: field `num_encoder_layers`: 2, but the weights imply 1"),
        ("\"num_decoder_layers\": 1", "\"num_decoder_layers\": 3", "config.json: field `num_decoder_layers`: 3, but the weights imply 1"),
        ("\"tie_embeddings\": false", "\"tie_embeddings\": true", "config.json: field `tie_embeddings`: true, but the weights imply false"),
    ];
    for (from, to, want) in cases {
        assert!(config.contains(from), "{from}");
        std::fs::write(dir.join("config.json"), config.replacen(from, to, 1)).unwrap();
        let out = dir.join("bad.pico");
        let o = picoformer(&["convert", dir.to_str().unwrap(), "--out", out.to_str().unwrap()], b"");
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{to}: {err}");
        assert!(err.contains(want), "{to}: {err}");
        if to.contains("vocab_size") {
            assert!(err.contains("tokenizer.model has 800 pieces"), "{err}");
        }
        assert!(!out.exists(), "{to}");
    }
}

/// `eval` draws its progress on stderr when that is a terminal: run under `script`, which
/// gives it one, with stdout sent elsewhere. Skips (with a message) where `script` is missing.
#[test]
fn eval_shows_progress_on_stderr() {
    let dir = std::env::temp_dir().join(format!("picoformer-cli-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (from, to) in [("test2016.de", "src"), ("test2016.en", "ref")] {
        let lines = std::fs::read_to_string(root().join("models/de-en").join(from)).unwrap();
        std::fs::write(dir.join(to), lines.lines().take(30).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }
    let (src, reference) = (dir.join("src"), dir.join("ref"));
    let eval = format!("'{}' eval --model '{}' --src '{}' --ref '{}' > '{}'", env!("CARGO_BIN_EXE_picoformer"), model(), src.display(), reference.display(), dir.join("stdout").display());
    let Ok(o) = Command::new("script").args(["-qec", &eval, "/dev/null"]).stdin(Stdio::null()).output() else {
        eprintln!("skipped: no `script` command to give eval a terminal");
        return;
    };
    let tty = text(&o.stdout);
    assert!(o.status.success(), "{tty}");
    for bar in ["int8 [", "float ["] {
        assert!(tty.contains(bar) && tty.contains("30/30"), "no {bar} bar on the terminal: {tty:?}");
    }
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap();
    assert!(stdout.starts_with("int8:  BLEU = ") && !stdout.contains('['), "{stdout}");
    // not a terminal: no bar, stdout the same
    let o = picoformer(&["eval", "--model", &model(), "--src", src.to_str().unwrap(), "--ref", reference.to_str().unwrap()], b"");
    assert!(o.status.success() && o.stderr.is_empty(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("int8:  BLEU = "));
}

/// `eval --batch N` writes the same int8 hypotheses as one sentence at a time (and its other
/// lines but the timing); batches outside 1..=64 are refused.
#[test]
fn eval_batch_gives_the_same_hypotheses() {
    let dir = std::env::temp_dir().join(format!("picoformer-cli-eval-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (from, to) in [("test2016.de", "src"), ("test2016.en", "ref")] {
        let lines = std::fs::read_to_string(root().join("models/de-en").join(from)).unwrap();
        std::fs::write(dir.join(to), lines.lines().take(40).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }
    let (src, reference) = (dir.join("src"), dir.join("ref"));
    let run = |batch: &str| {
        let hyps = dir.join(format!("hyps{batch}"));
        let args = ["eval", "--model", &model(), "--src", src.to_str().unwrap(), "--ref", reference.to_str().unwrap(), "--hyps", hyps.to_str().unwrap(), "--batch", batch];
        let o = picoformer(&args, b"");
        assert!(o.status.success(), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        let metrics: Vec<String> = out.lines().filter(|l| !l.starts_with("host")).map(str::to_owned).collect();
        (std::fs::read_to_string(hyps).unwrap(), metrics)
    };
    let (one, m1) = run("1");
    assert_eq!(one.lines().count(), 40);
    let want = std::fs::read_to_string(root().join("models/de-en/de-en.int8.en")).unwrap();
    assert_eq!(one.lines().collect::<Vec<_>>(), want.lines().take(40).collect::<Vec<_>>());
    for batch in ["7", "64"] {
        assert_eq!(run(batch), (one.clone(), m1.clone()), "--batch {batch}");
    }
    for bad in ["0", "65"] {
        let o = picoformer(&["eval", "--model", &model(), "--batch", bad], b"");
        assert!(!o.status.success() && text(&o.stderr).contains("--batch"), "--batch {bad}: {}", text(&o.stderr));
    }
}

fn model_at(name: &str) -> String {
    root().join(format!("models/{name}/{name}.pico")).display().to_string()
}

/// `generate` from stdin, as `translate`: a line that is not UTF-8 is named on stderr and gives
/// an empty line, the other prompts are still continued, the exit code says one failed; a beam
/// width of 0 is refused.
#[test]
fn generate_names_a_line_that_is_not_utf8_and_refuses_beam_0() {
    let lm = model_at("captions-lm");
    let one = |p: &str| {
        let o = picoformer(&["generate", "--model", &lm, p], b"");
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let o = picoformer(&["generate", "--model", &lm], b"A man in a red\n\xff\xfeA dog\nTwo dogs\r\n");
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success(), "exit code 0; stderr {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, [one("A man in a red").trim_end(), "", one("Two dogs").trim_end()], "{out:?}");
    assert!(err.contains("line 2: not valid UTF-8") && err.contains("line 2 of 3 was not continued"), "{err}");
    assert!(!err.contains("line 1:") && !err.contains("line 3:"), "{err}");
    let o = picoformer(&["generate", "--model", &lm, "--beam", "0", "A dog"], b"");
    assert!(!o.status.success() && o.stdout.is_empty(), "--beam 0 accepted: {}", text(&o.stdout));
    assert!(text(&o.stderr).contains("beam width is a whole number from 1 (greedy) to 16"), "{}", text(&o.stderr));
}

/// `generate` continues a prompt greedily as the report says, samples the same tokens for the
/// same seed, and cuts a prompt longer than the context with a note.
#[test]
fn generate_greedy_sampled_and_long_prompts() {
    let lm = model_at("captions-lm");
    let o = picoformer(&["generate", "--model", &lm, "A man in a red"], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "A man in a red shirt is standing in front of a building.\n");
    let sample = |seed: &str| {
        let o = picoformer(&["generate", "--model", &lm, "--sample", "--seed", seed, "--temperature", "0.8", "--top-k", "40", "Two dogs"], b"");
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let (a, b) = (sample("7"), sample("7"));
    assert_eq!(a, b);
    assert!(a.starts_with("Two dogs") && a.len() > "Two dogs\n".len(), "{a:?}");
    // stdin, one prompt per line; a prompt of 200 words is cut to the context's end, noted
    let long = "a dog ".repeat(100);
    let o = picoformer(&["generate", "--model", &lm, "--max-new", "3"], format!("A girl\n{long}\n").as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 2, "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("prompt 2"), "{}", text(&o.stderr));
}

/// `classify` prints one line per window with the class, its label and the scores; a window of
/// the wrong width and the wrong kind of model are named.
#[test]
fn classify_windows_and_errors() {
    let jv = model_at("japanese-vowels");
    let csv = root().join("models/japanese-vowels/test.csv").display().to_string();
    let o = picoformer(&["classify", "--model", &jv, &csv], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 370);
    assert!(out.starts_with("0: class 0 (speaker 1)  ["), "{out:.80}");
    let wrong = root().join("models/basic-motions/test.csv").display().to_string();
    let o = picoformer(&["classify", "--model", &jv, &wrong], b"");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("6 values, the model reads frames of 12"), "{}", text(&o.stderr));
    let o = picoformer(&["generate", "--model", &model(), "x"], b"");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("needs a decoder-only language model"), "{}", text(&o.stderr));
    let o = picoformer(&["classify", "--model", &model_at("captions-lm"), &csv], b"");
    assert!(!o.status.success());
}

/// `eval` finds the test set beside the model and reports the kind's metric.
#[test]
fn eval_reports_each_kind_metric() {
    let o = picoformer(&["eval", "--model", &model_at("basic-motions")], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("accuracy over 40 windows: int8 97.50% (39/40), float 97.50% (39/40)"), "{out}");
    assert!(out.contains("int8 predicts float's class on 40/40"), "{out}");
}
