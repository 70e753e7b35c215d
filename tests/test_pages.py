"""The pages a learner opens: index.html (`vanishing`) and explore.html (`explore`).

The browser tests drive Debian's headless Chromium over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: NUL-separated JSON on file descriptors 3 and 4, standard library only) and
are skipped when /usr/bin/chromium is absent. They load each page from file://, fail on any console
error or uncaught exception, press keys and click like a user, compare what is plotted with the
numbers the page embeds, and save screenshots under the test's temp dir.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_seq.cli import main

CHROMIUM = "/usr/bin/chromium"
pytest.importorskip("graphviz")
pytest.importorskip("matplotlib")


def embedded_grid(page: Path) -> dict:
    """The JSON explore.html carries (read from the file, not through the page's script)."""
    m = re.search(r'<script type="application/json" id="grid">(.*?)</script>', page.read_text(encoding="utf-8"), re.S)
    assert m, "explore.html has no embedded grid"
    return json.loads(m.group(1))


# ------------------------------------------------------------------------------ without a browser
@pytest.fixture(scope="module")
def quick_explore(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("explore")
    assert main(["explore", "--quick", "--out", str(out)]) == 0
    return out


def test_explore_embeds_every_setting_of_its_grid(quick_explore):
    from tinygrad_seq.viz.explore import CELLS, QUICK, graph_key, run_key
    d = embedded_grid(quick_explore / "explore.html")
    want = {run_key(c, H, k, n, T) for c in CELLS for H in QUICK.hiddens for k in range(len(QUICK.knobs(c)))
            for n in QUICK.train_steps for T in QUICK.seq_lens}
    assert set(d["runs"]) == want
    for key, r in d["runs"].items():
        T = int(key.split("|")[-1])
        assert len(r["h"]) == T and all(v is not None and v >= 0 for v in r["h"])
        assert (r["c"] is not None) == key.startswith("lstm") and (r["pascanu"] is not None) == key.startswith("rnn")
        assert (r["lane_rate"] is not None) == (not key.startswith("rnn")) and r["predicted_rate"] is not None
        assert r["lane_chain"] == {"rnn": None, "lstm": "c", "gru": "h"}[key.split("|")[0]]
    if shutil.which("dot"):  # a graph for each cell/knob at init and after the last training step
        assert set(d["graphs"]) == {graph_key(c, k, n) for c in CELLS for k in range(len(QUICK.knobs(c)))
                                    for n in (QUICK.train_steps[0], QUICK.train_steps[-1])}
        assert all(s.startswith("<svg") for s in d["graphs"].values())


def test_explore_curves_are_the_engine_measurements(quick_explore):
    """A stored curve is the measurement of the same probe, re-measured here (4 significant digits)."""
    from tinygrad_seq.demos.data import adding_problem
    from tinygrad_seq.viz import experiments as E
    from tinygrad_seq.viz.explore import QUICK, make_probe, run_key
    d = embedded_grid(quick_explore / "explore.html")
    T, H = QUICK.seq_lens[-1], QUICK.hiddens[-1]
    x, y = adding_problem(QUICK.batch_size, T, np.random.default_rng(0), dtype=np.float64)
    for cell, ki in (("rnn", 1), ("lstm", 1), ("gru", 0)):
        knob = QUICK.knobs(cell)[ki]
        m = E.measure(make_probe(cell, H, knob, 0), x, y)
        r = d["runs"][run_key(cell, H, ki, 0, T)]
        np.testing.assert_allclose(r["h"], m.h, rtol=1e-3)
        np.testing.assert_allclose(r["rate"], m.mean_ratio, rtol=1e-3)
        if cell == "rnn":  # W_hh rescaled to the slider's sigma_max: the Pascanu condition is sigma_max * 1 (tanh)
            assert r["pascanu"] == pytest.approx(knob, rel=1e-3)


def _same_numbers(run: dict, th: dict) -> None:
    """A run's theory numbers (4 significant digits in the JSON) against Theory.as_dict() of a fresh model."""
    from tinygrad_seq.viz.explore import SHOWN
    for k in SHOWN:
        want, got = th[k], run[k]
        if isinstance(want, float) and want == float("inf"):
            assert got == "inf", k
        elif isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-3), k
        else:
            assert got == want, k


def test_explore_theory_is_theory_of_a_fresh_model(quick_explore):
    """The predicted numbers on the page are experiments.theory() of the same setting, recomputed here from a
    fresh probe: at init (every cell) and after the grid's training (LSTM, trained again from the same seed)."""
    from tinygrad_seq.demos.data import adding_problem
    from tinygrad_seq.viz import experiments as E
    from tinygrad_seq.viz.explore import QUICK, make_probe, run_key
    d = embedded_grid(quick_explore / "explore.html")
    T, H = QUICK.seq_lens[-1], QUICK.hiddens[-1]
    x, y = adding_problem(QUICK.batch_size, T, np.random.default_rng(0), dtype=np.float64)
    for cell, ki in (("rnn", 0), ("lstm", 1), ("gru", 0)):
        th = E.theory(make_probe(cell, H, QUICK.knobs(cell)[ki], 0), x, y).as_dict()
        assert th["predicted_rate"] is not None
        _same_numbers(d["runs"][run_key(cell, H, ki, 0, T)], th)
    n = QUICK.train_steps[-1]
    model, rng = make_probe("lstm", H, QUICK.knobs("lstm")[1], 0), np.random.default_rng(1)
    E.train(model, (adding_problem(32, QUICK.train_T, rng, dtype=np.float64) for _ in range(n)))
    _same_numbers(d["runs"][run_key("lstm", H, 1, n, T)], E.theory(model, x, y).as_dict())


def test_explore_prints_the_definitions_once(quick_explore):
    from html import escape

    from tinygrad_seq.viz.grads import DEFINITIONS
    page = (quick_explore / "explore.html").read_text(encoding="utf-8")
    for v in DEFINITIONS.values():
        assert page.count(escape(v)) == 1, v[:40]
    assert "mean gate" not in page.replace("the mean gate does not predict it", "")  # no mean-gate predictor left


def test_forget_bias_and_training_change_the_curves(quick_explore):
    from tinygrad_seq.viz.explore import QUICK, run_key
    runs = embedded_grid(quick_explore / "explore.html")["runs"]
    T, H = QUICK.seq_lens[-1], QUICK.hiddens[0]
    fb = [runs[run_key("lstm", H, k, 0, T)]["h"][0] for k in range(len(QUICK.forget_biases))]
    assert fb == sorted(fb) and fb[0] < fb[-1]  # a larger forget bias keeps more gradient at t=0
    assert runs[run_key("gru", H, 0, 0, T)]["h"] != runs[run_key("gru", H, 0, QUICK.train_steps[-1], T)]["h"]


@pytest.mark.parametrize("flag,value", [("--seq-lens", "1,10"), ("--hiddens", "a"), ("--train-steps", "-1")])
def test_explore_bad_flags_are_one_line_errors(tmp_path, capsys, flag, value):
    assert main(["explore", "--quick", flag, value, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and flag in err and not (tmp_path / "explore.html").exists()


# ------------------------------------------------------------------------------ the browser
class Chromium:
    """Headless Chromium driven over the DevTools protocol through --remote-debugging-pipe."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 900):
        to_r, self._to = os.pipe()       # we write, Chromium reads on fd 3
        self._from, from_w = os.pipe()   # Chromium writes on fd 4, we read

        def fds():  # in the child: fds 3 and 4 (moved out of the way first, in case they are 3 or 4)
            a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"], preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._id, self._replies, self.events = 0, {}, []
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank", session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True, session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from, 1 << 16)
            if not chunk:  # Chromium exited
                os.close(self._from)
                return
            buf += chunk
            *msgs, buf = buf.split(b"\0")
            with self._cv:
                for raw in msgs:
                    msg = json.loads(raw)
                    (self._replies.__setitem__(msg["id"], msg) if "id" in msg else self.events.append(msg))
                self._cv.notify_all()

    def send(self, method: str, session: bool = True, timeout: float = 30, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to, json.dumps(msg).encode() + b"\0")
        with self._cv:
            assert self._cv.wait_for(lambda: self._id in self._replies, timeout), f"no reply to {method}"
            reply = self._replies.pop(self._id)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply["result"]

    def wait_event(self, method: str, since: int, timeout: float = 30) -> dict:
        with self._cv:
            ok = self._cv.wait_for(lambda: any(e["method"] == method for e in self.events[since:]), timeout)
        assert ok, f"no {method} event"
        return next(e for e in self.events[since:] if e["method"] == method)

    def open(self, path: Path) -> None:
        n = len(self.events)
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_event("Page.loadEventFired", n)

    def js(self, expression: str):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    def key(self, name: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=name, code=name, windowsVirtualKeyCode=code)

    def click(self, selector: str) -> None:
        x, y = self.js(f"(function(){{var r=document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                       f"return [r.left+r.width/2, r.top+r.height/2];}})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"]["text"])
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
        return out

    def screenshot(self, path: Path, full: bool = False) -> Path:
        kw = {"captureBeyondViewport": True} if full else {}
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png", **kw)["data"]))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=5)
        except AssertionError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to)


@pytest.fixture
def browser(tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Chromium is not installed (/usr/bin/chromium; Debian: apt-get install chromium)")
    b = Chromium(tmp_path / "profile")
    yield b
    b.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    """The main demo's pages in one directory, as a learner gets them: vanishing, then explore."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Chromium is not installed (/usr/bin/chromium; Debian: apt-get install chromium)")
    out = tmp_path_factory.mktemp("pages")
    assert main(["vanishing", "--quick", "--out", str(out)]) == 0
    assert main(["explore", "--quick", "--out", str(out)]) == 0
    return out


def _polyline(b: Chromium, svg: str, name: str) -> dict:
    return b.js(f"(function(){{var p=document.querySelector('#{svg} polyline[data-name=\"{name}\"]');"
                f"return p?{{key:p.dataset.key,values:JSON.parse(p.dataset.values),"
                f"points:p.getAttribute('points').trim().split(/\\s+/).length}}:null;}})()")


def _shown(b: Chromium, field: str, run: dict) -> float:
    """The number the table shows for `field` ("×0.757 (…)", "2.49 steps", "0.639"), after checking its cell
    carries exactly the embedded precomputed value `run[field]`."""
    cell = b.js(f"(function(){{var e=document.getElementById('num-{field}');"
                f"return e?{{text:e.textContent,value:JSON.parse(e.dataset.value)}}:null;}})()")
    assert cell is not None, f"no table cell for {field}"
    assert cell["value"] == run[field], field
    shown = float(re.match(r"×?([-0-9.e+]+)", cell["text"]).group(1))
    assert shown == float(f"{run[field]:.3g}"), (field, cell["text"])  # the page prints 3 significant digits
    return shown


@pytest.mark.slow
def test_index_page_in_chromium(pages, browser, tmp_path):
    b = browser
    b.open(pages / "index.html")
    if not shutil.which("dot"):
        pytest.skip("no Graphviz `dot`: index.html links DOT source instead of pictures")
    time.sleep(0.3)
    view = b.js("""(function(){var w=document.documentElement.clientWidth;
        return Array.prototype.map.call(document.querySelectorAll('.pz'),function(box){var i=box.querySelector('img');
        return {src:i.getAttribute('src'),nat:i.naturalWidth,w:i.getBoundingClientRect().width,box:box.clientWidth,
                page:w,top:box.getBoundingClientRect().top};});})()""")
    assert [v["src"] for v in view] == ["rnn.svg", "lstm.svg", "gru.svg"]
    for v in view:  # every graph loaded, one per row, as wide as the page (fit width)
        assert v["nat"] > 0 and v["box"] > 0.9 * v["page"] and v["w"] == pytest.approx(v["box"], abs=2)
    assert view[0]["top"] < view[1]["top"] < view[2]["top"]
    b.screenshot(tmp_path / "index.png", full=True)
    # the zoom button of the LSTM viewer zooms that picture 1.5x, and "fit width" brings it back
    width = "document.querySelectorAll('.pz img')[1].getBoundingClientRect().width"
    w0 = b.js(width)
    b.js("document.querySelectorAll('.pzwrap')[1].scrollIntoView()")
    b.click("section.graph:nth-of-type(2) button[data-pz=in]")
    assert b.js(width) == pytest.approx(1.5 * w0, rel=1e-3)
    b.screenshot(tmp_path / "index_zoomed.png")
    b.click("section.graph:nth-of-type(2) button[data-pz=fit]")
    assert b.js(width) == pytest.approx(w0, rel=1e-3)
    assert b.js("document.getElementById('explore-link').getAttribute('href')") == "explore.html"
    assert (pages / "explore.html").exists()
    assert b.errors() == []


@pytest.mark.slow
def test_explore_page_in_chromium(pages, browser, tmp_path):
    b = browser
    d = embedded_grid(pages / "explore.html")
    b.open(pages / "explore.html")
    A = d["axes"]

    def shown(cell, T_i, H_i, fb_i=None, sig_i=0, tr_i=0):
        knob = {"rnn": sig_i, "lstm": fb_i}.get(cell, 0)
        return f"{cell}|{A['H'][H_i]}|{knob}|{A['train'][tr_i]}|{A['T'][T_i]}"

    fb1 = A["fb"].index(1.0)
    start = shown("lstm", len(A["T"]) - 1, len(A["H"]) - 1, fb1)  # opens on the main demo's setting
    h = _polyline(b, "plot", "h")
    assert h["key"] == start and h["values"] == d["runs"][start]["h"] and h["points"] == A["T"][-1]
    assert _polyline(b, "plot", "c")["values"] == d["runs"][start]["c"]
    assert _shown(b, "predicted_rate", d["runs"][start]) == pytest.approx(d["runs"][start]["predicted_rate"], rel=5e-3)
    b.screenshot(tmp_path / "explore.png", full=True)

    # a real key press on the T slider: one step shorter; the curves become the precomputed ones for it
    b.js("document.getElementById('s-T').focus()")
    b.key("ArrowLeft", 37)
    new = shown("lstm", len(A["T"]) - 2, len(A["H"]) - 1, fb1)
    h = _polyline(b, "plot", "h")
    assert h["key"] == new and h["values"] == d["runs"][new]["h"] and h["points"] == A["T"][-2]
    assert b.js("document.getElementById('v-T').textContent") == str(A["T"][-2])
    run = d["runs"][new]
    for field in ("rate", "predicted_rate", "lane_rate", "predicted_half_life", "lane_half_life", "spectral_radius"):
        assert _shown(b, field, run) == pytest.approx(run[field], rel=5e-3), field
    assert run["predicted_rate"] != d["runs"][start]["predicted_rate"]  # the key press moved the prediction
    hv = run["h"]
    np.testing.assert_allclose(_polyline(b, "plot", "pred")["values"],
                               [hv[-1] * run["predicted_rate"] ** (len(hv) - 1 - t) for t in range(len(hv))], rtol=1e-9)
    r = _polyline(b, "ratio", "ratio")["values"]
    hv = d["runs"][new]["h"]
    np.testing.assert_allclose(r, [a / b_ for a, b_ in zip(hv, hv[1:])], rtol=1e-12)

    # the trained-steps slider, then the RNN: its curve, its Pascanu bound line and its graph
    b.js("document.getElementById('s-train').focus()")
    b.key("End", 35)
    src0 = b.js("document.querySelector('#graph img').src")
    b.click("input[name=cell][value=rnn]")
    new = shown("rnn", len(A["T"]) - 2, len(A["H"]) - 1, sig_i=0, tr_i=len(A["train"]) - 1)
    h = _polyline(b, "plot", "h")
    assert h["key"] == new and h["values"] == d["runs"][new]["h"]
    bound = _polyline(b, "plot", "bound")["values"]
    hv = d["runs"][new]["h"]
    np.testing.assert_allclose(bound, [hv[-1] * d["runs"][new]["pascanu"] ** (len(hv) - 1 - t) for t in range(len(hv))],
                               rtol=1e-9)
    for field in ("pascanu", "predicted_rate", "spectral_radius", "max_jacobian"):
        assert _shown(b, field, d["runs"][new]) == pytest.approx(d["runs"][new][field], rel=5e-3), field
    assert "sufficient, not a prediction" in b.js("document.getElementById('nums').textContent")
    if shutil.which("dot"):
        assert b.js("document.querySelector('#graph img').src") != src0
        time.sleep(0.3)
        assert b.js("document.querySelector('#graph img').naturalWidth") > 0
    b.screenshot(tmp_path / "explore_rnn.png", full=True)
    assert b.errors() == []


def test_readme_crop_box_holds_the_last_step_and_the_fold(tmp_path):
    """scripts/readme_images.py crops each README graph around the cluster "t=T-1" and the folded box."""
    if not shutil.which("dot"):
        pytest.skip("no Graphviz `dot`")
    import importlib.util

    from tinygrad_seq.demos.data import adding_problem
    from tinygrad_seq.viz import experiments as E
    from tinygrad_seq.viz.graph import draw_graph
    spec = importlib.util.spec_from_file_location("readme_images", Path(__file__).parent.parent / "scripts" / "readme_images.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    T = 12
    x, y = adding_problem(2, T, np.random.default_rng(0), dtype=np.float64)
    model = E.Probe("lstm", 4)
    svg = draw_graph(E.probe_loss(model, x, y)[0], model=model, keep_steps=1).pipe(format="svg").decode()
    box = mod.crop_box(svg, T - 1)
    width, height = (float(v) for v in re.search(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ([\d.]+)"', svg).groups())
    assert box is not None and 0 < box[2] - box[0] < width and 0 < box[3] - box[1] < height
    assert mod.crop_box(svg, T + 5) is None  # no such step: the whole picture is kept
