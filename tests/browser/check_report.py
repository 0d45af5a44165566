#!/usr/bin/env python3
"""Render a run's report.html in headless Chromium and check the page against stats.json.

    python tests/browser/check_report.py RUN_DIR OUT_DIR [--chromium /usr/bin/chromium]

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe; standard
library only). It loads RUN_DIR/report.html from disk, then this script writes
  OUT_DIR/report.png       full-page screenshot (a dropped-sample reason with thumbnails opened)
  OUT_DIR/report.dom.html  the DOM after load
  OUT_DIR/console.json     console messages, exceptions, log entries and requests seen
and checks, on the DOM dump and the rendered page:
  - every section is there; the overview, funnel, drop table, sample browser, histograms,
    buckets and packing numbers equal stats.json / manifest.json;
  - every sample shown is a ledger row of its stage and reason (pyarrow);
  - the spec text is RUN_DIR/spec.yaml;
  - no console error, no uncaught exception, no error log entry, and no request other than
    the page itself and data: URIs (the report is self-contained);
  - every chart has a rendered size, every thumbnail decoded, and the screenshot is a real
    page (PIL: full width, not one flat colour).
Prints 'browser: N passed, M failed' and exits non-zero on any failure.
"""
import argparse
import base64
import glob
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from checklib import run_checks  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--remote-debugging-pipe",
]
WIDTH = 1100
MAX_HEIGHT = 16000


class Pipe:
    """The DevTools protocol over Chromium's pipe: NUL-terminated JSON messages."""

    def __init__(self, chromium, user_data_dir):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        # the child expects the pipe on fds 3 (it reads) and 4 (it writes)
        hi_r, hi_w = os.dup(to_child_r), os.dup(from_child_w)

        def fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for fd in (to_child_r, from_child_w, hi_r, hi_w):
            os.close(fd)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def _read_message(self):
        while b"\0" not in self.buf:
            chunk = os.read(self.from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe: " + self.proc.stderr.read().decode(errors="replace")[-2000:])
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read_message()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method, session):
        for i, e in enumerate(self.events):
            if e.get("method") == method and e.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            m = self._read_message()
            if m.get("method") == method and m.get("sessionId") == session:
                return m
            self.events.append(m)

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def render(run_dir, out_dir, chromium):
    page = "file://" + os.path.abspath(os.path.join(run_dir, "report.html"))
    profile = tempfile.mkdtemp(prefix="cotforge-chromium-")
    cdp = Pipe(chromium, profile)
    try:
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(f"{domain}.enable", session=s)
        cdp.call("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
        cdp.call("Page.navigate", {"url": page}, session=s)
        cdp.wait_event("Page.loadEventFired", s)

        def js(expr):
            r = cdp.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True}, session=s)
            if "exceptionDetails" in r:
                raise RuntimeError(f"evaluating {expr[:60]}: {r['exceptionDetails']}")
            return r["result"].get("value")

        dom = js("document.documentElement.outerHTML")
        layout = js(
            """(() => {
              const charts = [...document.querySelectorAll('svg.chart')].map(e => {
                const r = e.getBoundingClientRect(); return [r.width, r.height]; });
              // open the first reason whose samples have thumbnails, and its first trace
              const d = [...document.querySelectorAll('details.reason')].find(e => e.querySelector('img.thumb'));
              if (d) { d.open = true; const t = d.querySelector('details.trace'); if (t) t.open = true; }
              return new Promise(done => requestAnimationFrame(() => {
                const imgs = [...document.querySelectorAll('img')].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
                done({charts, imgs, height: document.documentElement.scrollHeight,
                      width: document.documentElement.scrollWidth});
              }));
            })()"""
        )
        height = min(layout["height"], MAX_HEIGHT)
        cdp.call("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=s)
        shot = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=s)
        png = base64.b64decode(shot["data"])
        # drain what arrived while the page rendered
        cdp.call("Runtime.evaluate", {"expression": "1"}, session=s)
        events = [e for e in cdp.events if e.get("sessionId") == s]
    finally:
        cdp.close()
        shutil.rmtree(profile, ignore_errors=True)

    requests = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    console = {
        "console": [
            {"type": e["params"]["type"], "text": " ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])}
            for e in events
            if e["method"] == "Runtime.consoleAPICalled"
        ],
        "exceptions": [e["params"]["exceptionDetails"].get("text", "") for e in events if e["method"] == "Runtime.exceptionThrown"],
        "log": [
            {"level": e["params"]["entry"]["level"], "source": e["params"]["entry"]["source"], "text": e["params"]["entry"]["text"]}
            for e in events
            if e["method"] == "Log.entryAdded"
        ],
        "requests": [u for u in requests if not u.startswith("data:")],
        "data_uri_requests": sum(1 for u in requests if u.startswith("data:")),
        "failed_requests": [e["params"].get("errorText", "") for e in events if e["method"] == "Network.loadingFailed"],
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.png"), "wb") as f:
        f.write(png)
    with open(os.path.join(out_dir, "report.dom.html"), "w", encoding="utf-8") as f:
        f.write(dom)
    with open(os.path.join(out_dir, "console.json"), "w") as f:
        json.dump(console, f, indent=1)
    return page, dom, layout, png, console


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.text = [], []

    def cls(self):
        return self.attrs.get("class", "").split()

    def all(self):
        yield self
        for c in self.children:
            yield from c.all()

    def find(self, tag=None, cls=None, **attrs):
        return [
            n
            for n in self.all()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.cls())
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def content(self):
        return "".join(self.text) + "".join(c.content() for c in self.children)


class Tree(html.parser.HTMLParser):
    VOID = {"meta", "img", "br", "hr", "input", "link", "source", "rect", "line"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None)
        self.cur = self.root
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in self.VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text.append(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    a = ap.parse_args()
    stats = json.load(open(os.path.join(a.run_dir, "stats.json")))
    page, dom, layout, png, console = render(a.run_dir, a.out_dir, a.chromium)
    doc = Tree(dom).root
    checks = []

    def check(fn):
        checks.append(fn)
        return fn

    def section(i):
        found = doc.find(id=i)
        assert len(found) == 1, f"section #{i}: {len(found)} found"
        return found[0]

    def bar_values(node):
        return [(g.attrs["data-label"], float(g.attrs["data-value"])) for g in node.find("g", cls="bar")]

    @check
    def every_section_is_there():
        for i in ["overview", "funnel", "drops", "measured", "buckets", "packing", "samples", "summaries", "spec"]:
            section(i)
        assert doc.find("title")[0].content().endswith(stats["name"])

    @check
    def overview_numbers_are_the_stats():
        for i, key in [("rows-in", "rows_in"), ("rows-out", "rows_out"), ("ledger-rows", "ledger_rows")]:
            el = section(i)
            assert int(el.attrs["data-value"]) == stats[key] and el.content().strip() == str(stats[key]), (i, el.content())
        assert section("spec-hash").content() == stats["spec_blake3"]

    @check
    def funnel_bars_are_rows_after_each_stage():
        got = bar_values(section("funnel"))
        want = [("raw rows", stats["rows_in"])] + [(f"{s['index']:02} {s['stage']}", s["rows_out"]) for s in stats["stages"]]
        assert got == [(l, float(v)) for l, v in want], got

    @check
    def drop_table_and_chart_are_the_drop_counts():
        want = [(s["index"], s["stage"], r, n) for s in stats["stages"] for r, n in s["dropped"].items() if n > 0]
        rows = section("drops").find("tr", cls=None)
        got = [
            (int(t.attrs["data-stage-index"]), t.attrs["data-stage"], t.attrs["data-reason"], int(t.attrs["data-rows"]))
            for t in rows
            if "data-reason" in t.attrs
        ]
        assert got == want, got
        chart = bar_values(section("drops"))
        assert [v for _, v in chart] == [float(n) for *_, n in want]
        assert sum(n for *_, n in want) == stats["ledger_rows"]

    @check
    def histograms_are_the_measured_values():
        figs = section("measured").find("figure", cls="hist")
        want = [(s["index"], m, h) for s in stats["stages"] for m, h in sorted(s.get("measured", {}).items())]
        assert len(figs) == len(want), (len(figs), len(want))
        for fig, (i, m, h) in zip(figs, want):
            assert int(fig.attrs["data-stage-index"]) == i and fig.attrs["data-metric"] == m
            assert int(fig.attrs["data-count"]) == h["count"]
            bars = bar_values(fig)
            assert sum(v for _, v in bars) == h["count"], (m, bars)
            nonzero = [v for _, v in bars if v > 0]
            assert nonzero == [float(n) for _, n in h["buckets"]], (m, nonzero, h["buckets"])
        metrics = {f.attrs["data-metric"] for f in figs}
        assert {"image_width", "tokens"} <= metrics, metrics

    @check
    def buckets_are_the_bucket_summary():
        stage = next(s for s in stats["stages"] if s["stage"] == "bucket")
        b = stage["summary"]["buckets"]
        rows = section("buckets").find("tr")
        got = {t.attrs["data-bucket"]: [int(td.content()) for td in t.find("td")[1:]] for t in rows if "data-bucket" in t.attrs}
        want = {k: [v["rows_in"], v["rows_kept"], v["tokens_in"], v["tokens_kept"]] for k, v in b.items()}
        assert got == want, got
        kept = bar_values(section("buckets").find("figure", cls="buckets")[0])
        assert sum(v for _, v in kept) == stats["rows_out"]

    @check
    def packing_is_the_manifest():
        m = json.load(open(os.path.join(a.run_dir, "shards", "manifest.json")))
        p = section("packing")
        assert int(p.find(id="packs")[0].attrs["data-value"]) == m["packs"] == stats["shards"]["packs"]
        assert int(p.find(id="pack-tokens")[0].attrs["data-value"]) == m["tokens"]
        assert abs(float(p.find(id="pack-fill")[0].attrs["data-value"]) - m["fill"]) < 1e-3
        fill = p.find("figure", cls="fill")[0]
        assert sum(v for _, v in bar_values(fill)) == m["packs"]

    @check
    def samples_are_ledger_rows_of_their_reason():
        import pyarrow as pa
        import pyarrow.parquet as pq

        ledger = pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(os.path.join(a.run_dir, "ledger", "*.parquet")))]).to_pylist()
        by_reason = {}
        for e in ledger:
            by_reason.setdefault((e["stage"], e["reason"]), set()).add(e["id"])
        blocks = section("samples").find("details", cls="reason")
        want = [(s["index"], s["stage"], r, n) for s in stats["stages"] for r, n in s["dropped"].items() if n > 0]
        assert len(blocks) == len(want)
        for blk, (i, stage, r, n) in zip(blocks, want):
            assert blk.attrs["data-reason"] == r and int(blk.attrs["data-rows"]) == n
            arts = blk.find("article", cls="sample")
            assert len(arts) == min(5, n), (r, len(arts))
            for art in arts:
                sid = art.attrs["data-id"] or None
                assert sid in by_reason[(stage, r)], (stage, r, sid)
                if sid is not None and r != "invalid_json":
                    assert art.find("details", cls="trace"), (r, sid)
        # a duplicate names the row kept instead
        dup = [b for b in blocks if b.attrs["data-reason"] == "duplicate"]
        if dup:
            assert "kept instead" in dup[0].content()

    @check
    def spec_text_is_the_run_spec():
        assert section("spec-text").content() == open(os.path.join(a.run_dir, "spec.yaml"), encoding="utf-8").read()

    @check
    def no_console_error_and_nothing_fetched():
        errors = [c for c in console["console"] if c["type"] in ("error", "assert")]
        assert not errors, errors
        assert not console["exceptions"], console["exceptions"]
        log_errors = [l for l in console["log"] if l["level"] == "error"]
        assert not log_errors, log_errors
        foreign = [u for u in console["requests"] if u != page]
        assert not foreign, foreign
        assert page in console["requests"], console["requests"]
        assert not console["failed_requests"], console["failed_requests"]

    @check
    def charts_and_thumbnails_render():
        assert layout["charts"], "no charts"
        assert all(w > 50 and h > 20 for w, h in layout["charts"]), layout["charts"]
        assert layout["imgs"], "no thumbnails"
        assert all(c and w > 0 and h > 0 for c, w, h in layout["imgs"]), [i for i in layout["imgs"] if not (i[0] and i[1])]
        assert layout["width"] <= WIDTH, f"page scrolls sideways: {layout['width']}"

    @check
    def screenshot_is_the_full_page():
        import io

        from PIL import Image

        img = Image.open(io.BytesIO(png)).convert("RGB")
        assert img.size == (WIDTH, min(layout["height"], MAX_HEIGHT)), img.size
        colours = img.resize((200, 400)).getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 20, "the page looks blank"

    return run_checks(checks, "browser", f" (screenshot and DOM dump in {a.out_dir})")


if __name__ == "__main__":
    sys.exit(main())
