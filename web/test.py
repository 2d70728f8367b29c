#!/usr/bin/env python3
"""Browser test of the built page (web/build): headless Chromium, driven over WebDriver by
chromedriver, loads the page from a local static server, types each sentence into the input,
presses Enter, and checks that the streamed output equals the host's translation character for
character; that the test-vector sentences show their measured Cortex-M4 count (and the source
ids the vector file lists) and every other sentence an estimate; and, with the server stopped,
that the reloaded page still translates from the service worker's cache.

    web/test.py --site target/web [--test2016 32] [--screenshot out.png]

The WebDriver client is the dozen HTTP calls this test needs (W3C WebDriver), on urllib: no
package to install. Exits 1 on any difference.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
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


def vector_cases(path):
    """(text, source id count) per case; format in src/vectors.rs."""
    b = Path(path).read_bytes()
    count, o, cases = struct.unpack_from("<I", b, 8)[0], 12, []
    for _ in range(count):
        tl = struct.unpack_from("<H", b, o)[0]
        text = b[o + 2:o + 2 + tl].decode()
        o += 2 + tl
        n = struct.unpack_from("<H", b, o)[0]
        o += 2 + 2 * n
        m = struct.unpack_from("<H", b, o)[0]
        o += 2 + 2 * m + 4
        cases.append((text, n))
    return cases


def host_translations(sentences):
    cmd = ["cargo", "run", "--quiet", "--release", "--bin", "picoformer", "--", "translate",
           "--model", "models/de-en/de-en.pico", *sentences]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = out.split("\n")
    if len(lines) != len(sentences) + 1 or lines[-1] != "":
        sys.exit(f"host translate printed {len(lines) - 1} lines for {len(sentences)} sentences")
    return lines[:-1]


RESULT = """
const o = document.querySelector('#output'), m4 = document.querySelector('#m4');
if (!o || o.dataset.run !== arguments[0] || !['done', 'error'].includes(o.dataset.state)) return null;
return { state: o.dataset.state, text: o.textContent, sourceIds: Number(o.dataset.sourceIds),
         m4: m4 && m4.dataset.kind, instructions: m4 && Number(m4.dataset.instructions),
         tokens: o.querySelectorAll('.tok').length };
"""


def translate(wd, text, run):
    wd.type("#input", text + "\ue007")  # Enter translates
    return wd.until(RESULT, str(run), what=f"the translation of {text!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", default=str(ROOT / "target/web"))
    ap.add_argument("--test2016", type=int, default=32, help="how many test2016.de sentences besides the vectors (their first eight)")
    ap.add_argument("--screenshot", help="write a PNG of the page after a measured sentence")
    a = ap.parse_args()

    vectors = vector_cases(ROOT / "models/de-en/de-en.vectors.bin")
    measured = {c["text"]: c for c in json.loads((ROOT / "web/models/de-en.m4.json").read_text())["cases"]}
    extra = [t for t in (ROOT / "models/de-en/test2016.de").read_text().splitlines()
             if t not in measured][:a.test2016]
    sentences = [t for t, _ in vectors] + extra
    t0 = time.time()
    expected = host_translations(sentences)
    print(f"host: {len(sentences)} translations in {time.time() - t0:.1f} s")

    procs, failures, wd, passed = [], [], None, False
    work = Path(tempfile.mkdtemp(prefix="picoformer-web-test-"))
    profile, driver_log = work / "profile", work / "chromedriver.log"
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
        for i, (text, want) in enumerate(zip(sentences, expected)):
            run += 1
            r = translate(wd, text, run)
            problems = []
            if r["state"] != "done":
                problems.append(f"error {r['text']!r}")
            elif r["text"] != want:
                problems.append(f"page {r['text']!r} != host {want!r}")
            if i < len(vectors):
                if r["m4"] != "measured" or r["instructions"] != measured[text]["instructions"]:
                    problems.append(f"M4 {r['m4']} {r['instructions']}, not measured {measured[text]['instructions']}")
                if r["sourceIds"] != vectors[i][1]:
                    problems.append(f"{r['sourceIds']} source ids, the vector has {vectors[i][1]}")
            elif r["m4"] != "estimate":
                problems.append(f"M4 figure is {r['m4']}, not an estimate")
            status = "ok" if not problems else "DIFFERS: " + "; ".join(problems)
            print(f"[{i + 1:2}/{len(sentences)}] {status}  {text[:60]}")
            if problems:
                failures.append(text)
        print(f"browser: {len(sentences)} sentences in {time.time() - t0:.1f} s")

        if a.screenshot:
            run += 1
            translate(wd, vectors[3][0], run)
            wd.screenshot(a.screenshot)
            print(f"screenshot: {a.screenshot}")

        # offline: stop the server, reload, translate again from the service worker's cache
        wd.until("return document.querySelector('#offline').dataset.ready === 'true' && "
                 "navigator.serviceWorker.controller !== null", what="the service worker")
        server.terminate()
        server.wait()
        wd.get(url)
        wd.until("return document.querySelector('#input') !== null", what="the model to load offline")
        r = translate(wd, sentences[0], 1)
        ok = r["state"] == "done" and r["text"] == expected[0]
        print(f"offline (server stopped, page reloaded): {'ok' if ok else 'DIFFERS: ' + repr(r)}")
        if not ok:
            failures.append("offline reload")
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
        print(f"FAIL: {len(failures)} of {len(sentences) + 1} checks differ")
        return 1
    print(f"OK: {len(sentences)} sentences identical to the host, character for character, and offline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
