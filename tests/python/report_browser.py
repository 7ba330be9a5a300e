"""The job's report as a user sees it: loaded by headless Chromium, with JavaScript errors and the drawn plots read
back from the page.

``check_report(path)`` loads an instrumented copy of the HTML file (an error recorder first in <head>, a probe last in
<body>) with ``--dump-dom`` and returns the probe's findings: every JavaScript error, and per Plotly figure whether it
drew, its traces, heatmap colour ranges and colour bar titles, text boxes that overlap and legends that cover a
plotting area. ``screenshot(path, png)`` takes a full-width picture (the README's).

Run as a script: ``python tests/python/report_browser.py report/report.html docs/report.png`` writes the screenshot
(with Pillow installed: the blank tail trimmed, scaled to 3/4 and reduced to 128 colours, as the README's) and
prints the check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--mute-audio")

_RECORDER = """<script>
window.__tsrnnErrors = [];
window.addEventListener("error", function (e) {
  var where = e.filename ? " at " + e.filename.split("/").pop() + ":" + e.lineno : "";
  var what = e.message || ("failed to load " + ((e.target && (e.target.src || e.target.href)) || e.type));
  window.__tsrnnErrors.push("error: " + what + where);
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__tsrnnErrors.push("unhandled promise rejection: " + e.reason);
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__tsrnnErrors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
</script>"""

_PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  function box(el) { var r = el.getBoundingClientRect(); return {l: r.left, t: r.top, r: r.right, b: r.bottom}; }
  function meets(a, b) { return a.l < b.r - 1 && b.l < a.r - 1 && a.t < b.b - 1 && b.t < a.b - 1; }
  var plots = Array.prototype.map.call(document.querySelectorAll(".plotly-graph-div"), function (div) {
    var layout = div.layout || {}, title = layout.title || "";
    var texts = Array.prototype.filter.call(div.querySelectorAll("svg text"), function (t) {
      var b = t.getBoundingClientRect();
      return t.textContent.trim() !== "" && b.width > 0 && b.height > 0;
    });
    var overlaps = [];
    for (var i = 0; i < texts.length; i++) for (var j = i + 1; j < texts.length; j++) {
      var a = texts[i], b = texts[j];
      // tick labels of one axis are laid out by Plotly itself; any other pair must not touch
      var sameAxis = a.parentNode && a.parentNode.parentNode === b.parentNode.parentNode;
      if (sameAxis && /tick/.test(a.parentNode.getAttribute("class") || "")) continue;
      if (meets(box(a), box(b))) overlaps.push(a.textContent.trim() + " | " + b.textContent.trim());
    }
    var areas = Array.prototype.map.call(div.querySelectorAll(".draglayer .nsewdrag"), box);
    var legend = div.querySelector(".legend");
    var covered = legend ? areas.some(function (a) { return meets(box(legend), a); }) : false;
    return {
      title: typeof title === "string" ? title : (title.text || ""),
      drawn: !!div._fullLayout && !!div.querySelector("svg.main-svg"),
      traces: (div.data || []).map(function (t) {
        var cb = (t.colorbar && t.colorbar.title) || {};
        return {type: t.type || "scatter", name: t.name || "", zmin: t.zmin, zmax: t.zmax,
                colorbar: typeof cb === "string" ? cb : (cb.text || "")};
      }),
      heatmaps_drawn: div.querySelectorAll(".hm image").length,
      lines_drawn: div.querySelectorAll(".scatterlayer .trace .js-line").length,
      colorbars_drawn: div.querySelectorAll(".colorbar").length,
      overlaps: overlaps,
      legend_covers_data: covered
    };
  });
  var pre = document.createElement("pre");
  pre.id = "tsrnn-check";
  pre.textContent = JSON.stringify({errors: window.__tsrnnErrors, plots: plots});
  document.body.appendChild(pre);
}, 300); });
</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> str:
    browser = find_browser()
    if browser is None:
        raise RuntimeError(f"no Chromium found on PATH (looked for {', '.join(BROWSERS)})")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{browser} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def check_report(path: str, timeout: float = 120) -> dict:
    """Loads ``path`` in headless Chromium; returns {"errors": [...], "plots": [...]} as the probe found them."""
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    if "<head>" not in doc or "</body>" not in doc:
        raise ValueError(f"{path}: not an HTML page with <head> and </body>")
    doc = doc.replace("<head>", "<head>" + _RECORDER, 1)
    before, body_end, after = doc.rpartition("</body>")
    doc = before + _PROBE + body_end + after
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "page.html")
        with open(page, "w", encoding="utf-8") as f:
            f.write(doc)
        dom = _run(["--virtual-time-budget=15000", "--window-size=1150,1000", "--dump-dom", "file://" + page],
                   timeout)
    found = re.search(r'<pre id="tsrnn-check">(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError("the page's probe never ran (the load event did not fire or the page did not finish); "
                           f"the DOM ends with: {dom[-500:]!r}")
    text = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    return json.loads(text)


def screenshot(path: str, png: str, width: int = 1150, height: int | None = None, timeout: float = 120) -> None:
    """A screenshot of the page at ``width`` CSS pixels, ``height`` tall (default: an estimate of the whole page
    from its figures' heights)."""
    if height is None:
        with open(path, encoding="utf-8") as f:
            doc = f.read()
        figure_px = sum(int(h) for h in re.findall(r'"height":\s*(\d+)', doc))
        figures = doc.count('class="plotly-graph-div"')
        height = 700 + figure_px + 450 * max(0, figures - len(re.findall(r'"height":\s*\d+', doc)))
    _run(["--virtual-time-budget=15000", f"--window-size={width},{height}",
          f"--screenshot={os.path.abspath(png)}", "file://" + os.path.abspath(path)], timeout)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/python/report_browser.py REPORT.html SCREENSHOT.png")
    screenshot(sys.argv[1], sys.argv[2])
    try:
        import numpy as np
        from PIL import Image
    except ImportError:
        pass
    else:
        im = Image.open(sys.argv[2]).convert("RGB")
        inked = np.where((np.asarray(im) < 250).any(axis=(1, 2)))[0]
        im = im.crop((0, 0, im.size[0], int(inked[-1]) + 30))
        im = im.resize((im.size[0] * 3 // 4, im.size[1] * 3 // 4), Image.LANCZOS).quantize(colors=128)
        im.save(sys.argv[2], optimize=True)
    print(json.dumps(check_report(sys.argv[1]), indent=1))
