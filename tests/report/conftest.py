"""Fixtures for the report tests: sides of a comparison, and a real headless Chromium.

``chromium`` finds Debian's ``chromium`` (installed by ``.ci/run``). Without one the browser
tests skip, unless ``FRUGAL_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Appended to a copy of a report: measures what the browser laid out, as JSON in #probe.
PROBE = """
<script>
(function(){
  function box(e){ var r = e.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, h: r.height}; }
  function overflow(e){ return {name: e.id || e.className, scroll: e.scrollWidth,
    client: e.clientWidth}; }
  var svg = document.querySelector('svg.scatter');
  var doc = document.documentElement;
  var one = function(sel){ var e = document.querySelector(sel); return e ? box(e) : null; };
  var out = {
    viewport: window.innerWidth,
    page: {scroll: doc.scrollWidth, client: doc.clientWidth},
    boxes: Array.from(document.querySelectorAll('section, .card, table, .bars'))
      .map(overflow),
    svg: svg ? box(svg) : null,
    points: Array.from(document.querySelectorAll('svg.scatter .point')).map(function(p){
      return {kind: p.dataset.kind, name: p.dataset.name, box: box(p)}; }),
    front: document.querySelectorAll('svg.scatter .pareto-front').length,
    bound: one('svg.scatter .quality-bound'),
    bound_label: one('svg.scatter .bound-label'),
    band: one('svg.scatter .noise-band'),
    rows: Array.from(document.querySelectorAll('#candidates tbody tr')).map(function(r){
      return {cls: r.className, h: box(r).h, name: r.cells[0].textContent}; }),
    table: one('#candidates'),
    table_section: one('#table'),
    bar_labels: Array.from(document.querySelectorAll('#breakdown .bar-label')).map(function(l){
      return {cls: l.className, text: l.textContent.trim().replace(/\\s+/g, ' '),
              scroll: l.scrollWidth, client: l.clientWidth, box: box(l)}; }),
    bars: document.querySelectorAll('#breakdown .bar').length,
    section_box: one('#breakdown'),
    verdict: (document.getElementById('verdict') || {}).textContent,
    cards: Array.from(document.querySelectorAll('.card')).map(function(c){
      return c.textContent.trim().replace(/\\s+/g, ' '); }),
    scripts_with_src: document.querySelectorAll('script[src]').length,
    links: document.querySelectorAll('link[href]').length
  };
  var pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
})();
</script>
"""


@dataclass
class Chromium:
    binary: str
    profile: Path

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            self.binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-extensions",
            # nothing may be fetched: any host lookup fails
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={self.profile}",
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def probe(self, html: Path, width: int = 1280) -> dict:
        """Open a copy of ``html`` with the probe appended, in a window ``width`` px wide; the
        layout facts it measured."""
        probed = html.with_name(html.stem + ".probe.html")
        probed.write_text(
            html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
        )
        done = self._run(
            "--virtual-time-budget=3000",
            f"--window-size={width},2000",
            "--dump-dom",
            probed.resolve().as_uri(),
        )
        start = done.stdout.find('<pre id="probe">')
        assert start >= 0, f"the probe did not run:\n{done.stdout[:500]}\n{done.stderr[-2000:]}"
        end = done.stdout.index("</pre>", start)
        import html as html_mod

        return json.loads(html_mod.unescape(done.stdout[start + len('<pre id="probe">') : end]))

    def screenshot(self, html: Path, png: Path, size: tuple[int, int] = (1280, 1800)) -> Path:
        done = self._run(
            f"--screenshot={png}",
            f"--window-size={size[0]},{size[1]}",
            "--hide-scrollbars",
            html.resolve().as_uri(),
        )
        assert png.exists(), f"no screenshot written:\n{done.stderr[-2000:]}"
        return png

    @staticmethod
    def png_facts(path: Path) -> tuple[int, int, int]:
        """(width, height, distinct byte values in the decompressed pixels) of a PNG file."""
        raw = path.read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
        width, height = struct.unpack(">II", raw[16:24])
        pos, idat = 8, b""
        while pos < len(raw):
            length = struct.unpack(">I", raw[pos : pos + 4])[0]
            kind = raw[pos + 4 : pos + 8]
            if kind == b"IDAT":
                idat += raw[pos + 8 : pos + 8 + length]
            pos += 12 + length
        return width, height, len(set(zlib.decompress(idat)))


def _browser() -> str | None:
    binary = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if binary is None and os.environ.get("FRUGAL_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(
            "FRUGAL_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)",
            pytrace=False,
        )
    return binary


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture: a browser test whose other fixtures skip (no shared data) must still
    # fail in CI when the browser is missing, not hide behind the data skip.
    if "chromium" in getattr(item, "fixturenames", ()):
        _browser()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    binary = _browser()
    if binary is None:
        pytest.skip("no headless browser: apt-get install chromium")
    return Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
