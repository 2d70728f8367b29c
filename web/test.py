#!/usr/bin/env python3
"""Browser test of the built page (web/build): headless Chromium, driven over WebDriver by
chromedriver, loads the page from a local static server and, per model tab,
- de-en: types each sentence into the input, presses Enter, and checks that the streamed output
  equals `picoformer translate` on the host character for character;
- captions-lm: types each prompt and checks prompt + continuation against `picoformer generate`;
- japanese-vowels and basic-motions: picks test-set windows and checks the class and the scores
  against `picoformer classify` on the same windows;
that the test-vector inputs show their measured Cortex-M4 count (and, for text, the id count the
vector file lists) and every other input an estimate; and, with the server stopped, that the
reloaded page still translates from the service worker's cache.

    web/test.py --site target/web [--test2016 32] [--extra 8] [--screenshot out.png]

The WebDriver client is the dozen HTTP calls this test needs (W3C WebDriver), on urllib: no
package to install. Exits 1 on any difference.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "web"))
import pvec  # noqa: E402

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CLASSIFIERS = ["japanese-vowels", "basic-motions"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=800,1135"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not start on port {port}")


class WebDriver:
    """A W3C WebDriver session: just the calls this test uses."""

    def __init__(self, port, args):
        self.base = f"http://127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": shutil.which("chromium") or "/usr/bin/chromium", "args": args}}}}
        self.sid = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        if path != "/session" and not path.startswith("/session/"):
            path = f"/session/{self.sid}{path}"
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            sys.exit(f"WebDriver {method} {path}: {e.read().decode()[:2000]}")
        except OSError as e:
            sys.exit(f"WebDriver {method} {path}: {e!r}")

    def get(self, url):
        self.call("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css, text):
        e = self.find(css)
        self.call("POST", f"/element/{e}/clear", {})
        self.call("POST", f"/element/{e}/value", {"text": text})

    def until(self, script, *args, timeout=60, what="the page"):
        end = time.time() + timeout
        while time.time() < end:
            v = self.js(script, *args)
            if v:
                return v
            time.sleep(0.05)
        sys.exit(f"timed out waiting for {what}")

    def screenshot(self, path):
        Path(path).write_bytes(base64.b64decode(self.call("GET", "/screenshot")))

    def quit(self):
        self.call("DELETE", f"/session/{self.sid}")


def stop_browser(profile):
    """End the Chromium processes this test started (those on its fresh profile), should the
    session have died before closing them."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--user-data-dir={profile}".encode() in cmd:
            try:
                os.kill(int(proc.name), 15)
            except OSError:
                pass


def host(*args):
    cmd = ["cargo", "run", "--quiet", "--release", "--bin", "picoformer", "--", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def host_lines(args, n):
    lines = host(*args).split("\n")
    if len(lines) != n + 1 or lines[-1] != "":
        sys.exit(f"host {args[0]} printed {len(lines) - 1} lines for {n} inputs")
    return lines[:-1]


def csv_windows(path):
    return [w.strip() for w in Path(path).read_text().split("\n\n") if w.strip()]


RESULT = """
const o = document.querySelector('#output'), m4 = document.querySelector('#m4');
if (!o || o.dataset.run !== arguments[0] || !['done', 'error'].includes(o.dataset.state)) return null;
return { state: o.dataset.state, text: o.textContent, ids: Number(o.dataset.ids),
         cls: Number(o.dataset.class), scores: o.dataset.scores,
         m4: m4 && m4.dataset.kind, instructions: m4 && Number(m4.dataset.instructions),
         tokens: o.querySelectorAll('.tok').length };
"""


def type_text(wd, text, run):
    wd.type("#input", text + "\ue007")  # Enter runs
    return wd.until(RESULT, str(run), what=f"the output for {text!r}")


def pick_window(wd, k, run):
    wd.js("const w = document.querySelector('#window'); w.value = arguments[0]; w.dispatchEvent(new Event('change'));"
          "document.querySelector('#run').click();", k)
    return wd.until(RESULT, str(run), what=f"the class of test window {k}")


def show(wd, model_id):
    """Open a model's tab and wait for its panel."""
    wd.js("document.querySelector(`nav button[data-id='${arguments[0]}']`).click()", model_id)
    wd.until("return document.querySelector('#output') && document.querySelector('nav button[aria-selected=true]')"
             ".dataset.id === arguments[0] && document.querySelector('#output').dataset.run === '0'", model_id,
             what=f"the {model_id} panel")


def m4_problems(r, case):
    if case is None:
        return [] if r["m4"] == "estimate" else [f"M4 figure is {r['m4']}, not an estimate"]
    if r["m4"] != "measured" or r["instructions"] != case["instructions"]:
        return [f"M4 {r['m4']} {r['instructions']}, not measured {case['instructions']}"]
    return []


def report(i, n, problems, what, failures):
    status = "ok" if not problems else "DIFFERS: " + "; ".join(problems)
    print(f"[{i + 1:2}/{n}] {status}  {what[:60]}")
    if problems:
        failures.append(what)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", default=str(ROOT / "target/web"))
    ap.add_argument("--test2016", type=int, default=32, help="how many test2016.de sentences besides the vectors (their first eight)")
    ap.add_argument("--extra", type=int, default=8, help="how many prompts and test windows besides the vectors")
    ap.add_argument("--screenshot", help="write a PNG of the page after a measured sentence")
    a = ap.parse_args()

    def costs(m):
        return json.loads((ROOT / f"web/models/{m}.m4.json").read_text())["cases"]

    t0 = time.time()
    # de-en: the vector sentences, then test2016 sentences
    vectors = pvec.read_cases(ROOT / "models/de-en/de-en.vectors.bin")
    measured = {c["text"]: c for c in costs("de-en")}
    extra = [t for t in (ROOT / "models/de-en/test2016.de").read_text().splitlines() if t not in measured][:a.test2016]
    sentences = [v["text"] for v in vectors] + extra
    expected = host_lines(["translate", "--model", "models/de-en/de-en.pico", *sentences], len(sentences))
    # captions-lm: the vector prompts, then more of prompts.txt
    lm_vectors = pvec.read_cases(ROOT / "models/captions-lm/captions-lm.vectors.bin")
    lm_measured = {c["text"]: c for c in costs("captions-lm")}
    prompts = [v["text"] for v in lm_vectors] + [t for t in (ROOT / "models/captions-lm/prompts.txt").read_text().splitlines()
                                                 if t not in lm_measured][:a.extra]
    continued = host_lines(["generate", "--model", "models/captions-lm/captions-lm.pico", *prompts], len(prompts))
    # the classifiers: the vector windows, then others spread over the test set
    work = Path(tempfile.mkdtemp(prefix="picoformer-web-test-"))
    classifiers = []
    for m in CLASSIFIERS:
        measured_windows = {int(c["text"].split()[-1]): c for c in costs(m)}
        test = csv_windows(ROOT / f"models/{m}/test.csv")
        picks = sorted(measured_windows) + [k for k in range(3, len(test), max(1, len(test) // max(a.extra, 1)))
                                            if k not in measured_windows][:a.extra]
        (work / f"{m}.csv").write_text("\n\n".join(test[k] for k in picks) + "\n")
        classes = {}
        for line in host("classify", "--model", f"models/{m}/{m}.pico", str(work / f"{m}.csv")).splitlines():
            i, rest = line.split(": class ", 1)
            cls, scores = rest.split(" ", 1)
            classes[picks[int(i)]] = (int(cls), scores.split("[", 1)[1].rstrip("]"))
        if len(classes) != len(picks):
            sys.exit(f"host classify printed {len(classes)} windows of {m} for {len(picks)}")
        classifiers.append((m, picks, classes, measured_windows))
    windows = sum(len(c[1]) for c in classifiers)
    print(f"host: {len(sentences)} translations, {len(prompts)} continuations, {windows} windows in {time.time() - t0:.1f} s")

    procs, failures, wd, passed = [], [], None, False
    profile, driver_log = work / "profile", work / "chromedriver.log"
    checks = 0
    try:
        http_port, wd_port = free_port(), free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(http_port), "--bind", "127.0.0.1",
                                   "--directory", a.site], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(server)
        procs.append(subprocess.Popen(["chromedriver", f"--port={wd_port}", f"--log-path={driver_log}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(http_port, "the static server")
        wait_port(wd_port, "chromedriver")
        wd = WebDriver(wd_port, CHROMIUM_ARGS + [f"--user-data-dir={profile}"])
        url = f"http://127.0.0.1:{http_port}/"
        wd.get(url)
        wd.until("return document.querySelector('#input') !== null", what="the model to load")

        t0 = time.time()
        run = 0
        print("de-en (translate):")
        for i, (text, want) in enumerate(zip(sentences, expected)):
            run += 1
            r = type_text(wd, text, run)
            problems = []
            if r["state"] != "done":
                problems.append(f"error {r['text']!r}")
            elif r["text"] != want:
                problems.append(f"page {r['text']!r} != host {want!r}")
            problems += m4_problems(r, measured.get(text) if i < len(vectors) else None)
            if i < len(vectors) and r["ids"] != len(vectors[i]["ids"]):
                problems.append(f"{r['ids']} source ids, the vector has {len(vectors[i]['ids'])}")
            report(i, len(sentences), problems, text, failures)
        checks += len(sentences)
        if a.screenshot:
            run += 1
            type_text(wd, vectors[3]["text"], run)
            wd.screenshot(a.screenshot)
            print(f"screenshot: {a.screenshot}")

        print("captions-lm (generate):")
        show(wd, "captions-lm")
        for i, (text, want) in enumerate(zip(prompts, continued)):
            run += 1
            r = type_text(wd, text, run)
            problems = []
            if r["state"] != "done":
                problems.append(f"error {r['text']!r}")
            elif text + r["text"] != want:
                problems.append(f"page {text + r['text']!r} != host {want!r}")
            problems += m4_problems(r, lm_measured.get(text) if i < len(lm_vectors) else None)
            if i < len(lm_vectors) and r["ids"] != len(lm_vectors[i]["ids"]):
                problems.append(f"{r['ids']} prompt ids, the vector has {len(lm_vectors[i]['ids'])}")
            report(i, len(prompts), problems, text, failures)
        checks += len(prompts)

        for m, picks, classes, measured_windows in classifiers:
            print(f"{m} (classify):")
            show(wd, m)
            for i, k in enumerate(picks):
                run += 1
                r = pick_window(wd, k, run)
                want_cls, want_scores = classes[k]
                problems = []
                if r["state"] != "done":
                    problems.append(f"error {r['text']!r}")
                elif (r["cls"], r["scores"]) != (want_cls, want_scores):
                    problems.append(f"page class {r['cls']} [{r['scores']}] != host class {want_cls} [{want_scores}]")
                problems += m4_problems(r, measured_windows.get(k))
                report(i, len(picks), problems, f"test window {k}", failures)
            checks += len(picks)
        print(f"browser: {checks} inputs in {time.time() - t0:.1f} s")

        # offline: stop the server, reload, translate again from the service worker's cache
        wd.until("return document.querySelector('#offline').dataset.ready === 'true' && "
                 "navigator.serviceWorker.controller !== null", what="the service worker")
        server.terminate()
        server.wait()
        wd.get(url)
        wd.until("return document.querySelector('#input') !== null", what="the model to load offline")
        r = type_text(wd, sentences[0], 1)
        ok = r["state"] == "done" and r["text"] == expected[0]
        print(f"offline (server stopped, page reloaded): {'ok' if ok else 'DIFFERS: ' + repr(r)}")
        if not ok:
            failures.append("offline reload")
        checks += 1
        passed = not failures
    finally:
        if wd is not None:
            try:
                wd.quit()  # closes the browser
            except BaseException:
                pass
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
        stop_browser(profile)
        if not passed and driver_log.exists():
            print("chromedriver's log, last lines:", *driver_log.read_text(errors="replace").splitlines()[-40:],
                  sep="\n", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)

    if failures:
        print(f"FAIL: {len(failures)} of {checks} checks differ")
        return 1
    print(f"OK: {checks - 1} inputs identical to the host, character for character, and offline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
