"""The inline SVG chart of the HTML report: quality against cost, with the Pareto front, the
quality bound and the noise band. Pure functions returning SVG text (every label escaped);
no JavaScript, no external resources. (The cost breakdown is plain HTML in the template.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from frugalml.report import units

BLUE, GREY, RED, ORANGE, GREEN = "#3b6fb6", "#a3acb9", "#d1495b", "#edae49", "#2a9d8f"


@dataclass(frozen=True)
class Dot:
    """One point of the scatter. ``kind``: ``candidate``, ``baseline`` or ``chosen``."""

    label: str
    x: float  # $ per 1M requests (> 0 for a log axis)
    y: float  # quality, in points
    kind: str = "candidate"
    on_front: bool = False
    tooltip: str = ""
    x_ci: tuple[float, float] | None = None  # measured interval of x (drawn as whiskers)
    y_ci: tuple[float, float] | None = None  # measured interval of y


@dataclass(frozen=True)
class Band:
    """The noise band around the chosen point: differences inside it are ties. ``x`` may be
    None (no cost interval measured): the band then spans the whole cost axis."""

    x: tuple[float, float] | None
    y: tuple[float, float]


class _Scale:
    """Maps data to pixels, linearly or on log10 (when the data spans more than 10x)."""

    def __init__(self, lo: float, hi: float, px_lo: float, px_hi: float, log: bool) -> None:
        self.log = log
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi - lo < 1e-12:
            pad = abs(lo) * 0.05 or 1.0
            lo, hi = lo - pad, hi + pad
        else:
            pad = (hi - lo) * 0.08
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.px_lo, self.px_hi = lo, hi, px_lo, px_hi

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.px_lo + (v - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo)

    def ticks(self) -> list[float]:
        if self.log:
            out = []
            for e in range(math.floor(self.lo), math.ceil(self.hi) + 1):
                steps = (1, 2, 5) if self.hi - self.lo < 3 else (1,)
                out += [m * 10.0**e for m in steps if self.lo <= math.log10(m * 10.0**e) <= self.hi]
            return out
        return nice_ticks(self.lo, self.hi)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """About ``count`` round tick values (1, 2, 2.5, 5 x 10^k steps) inside [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _tick_label(value: float, money: bool, step: float = 1.0) -> str:
    if money:
        return units.usd(value)
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    return f"{value:.{decimals}f}".replace("-", "−")


def _star(cx: float, cy: float, r: float) -> str:
    """Points of a five-pointed star of outer radius ``r`` centred on (cx, cy)."""
    return " ".join(
        f"{cx + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5):.1f},"
        f"{cy - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5):.1f}"
        for i in range(10)
    )


def _marker(dot: Dot, cx: float, cy: float) -> str:
    tip = f"<title>{escape(dot.tooltip or dot.label)}</title>"
    data = f'data-name="{escape(dot.label)}" data-kind="{dot.kind}"'
    if dot.kind == "baseline":
        r = 8
        pts = (
            f"{cx:.1f},{cy - r:.1f} {cx + r:.1f},{cy:.1f} "
            f"{cx:.1f},{cy + r:.1f} {cx - r:.1f},{cy:.1f}"
        )
        return (
            f'<polygon class="point baseline" {data} points="{pts}" fill="{RED}" '
            f'stroke="#fff" stroke-width="1.5">{tip}</polygon>'
        )
    if dot.kind == "chosen":
        pts = _star(cx, cy, 9)
        return (
            f'<polygon class="point chosen" {data} points="{pts}" fill="{ORANGE}" '
            f'stroke="#6b4c00" stroke-width="1">{tip}</polygon>'
        )
    fill = BLUE if dot.on_front else GREY
    return (
        f'<circle class="point{" front" if dot.on_front else ""}" {data} cx="{cx:.1f}" '
        f'cy="{cy:.1f}" r="5.5" fill="{fill}" fill-opacity="0.85" stroke="#fff" '
        f'stroke-width="1">{tip}</circle>'
    )


def scatter(
    dots: Sequence[Dot],
    *,
    x_label: str,
    y_label: str,
    higher_is_better: bool = True,
    bound: tuple[float, str] | None = None,
    band: Band | None = None,
    width: int = 960,
    height: int = 440,
) -> str:
    """Quality (y) against $ per 1M requests (x): the Pareto front as a step line, the quality
    bound as a horizontal line (``bound``: its quality and its label), the noise band around
    the chosen point (``band``) and each point's measured intervals as whiskers; a legend."""
    ml, mr, mt, mb = 72, 200, 22, 54  # the legend sits in the right margin
    if not dots:
        return (
            f'<svg class="chart scatter" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="60" role="img"><text x="10" y="35">No candidate has both a quality '
            f"and a cost to plot.</text></svg>"
        )
    xs = [d.x for d in dots] + [v for d in dots if d.x_ci for v in d.x_ci if v > 0]
    ys = [d.y for d in dots] + [v for d in dots if d.y_ci for v in d.y_ci]
    if band is not None:
        ys += list(band.y)
        xs += [v for v in band.x or () if v > 0]
    span = max(ys) - min(ys) or abs(max(ys)) * 0.05 or 1.0
    # a bound far from every point would squash them into a strip: then it is only named
    on_chart = bound is not None and min(ys) - span <= bound[0] <= max(ys) + span
    if bound is not None and on_chart:
        ys.append(bound[0])
    log = min(xs) > 0 and max(xs) / min(xs) > 10
    sx = _Scale(min(xs), max(xs), ml, width - mr, log)
    # better quality is up: flip the pixel range when lower is better (perplexity)
    sy = (
        _Scale(min(ys), max(ys), height - mb, mt, False)
        if higher_is_better
        else _Scale(min(ys), max(ys), mt, height - mb, False)
    )
    out = [
        f'<svg class="chart scatter" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" role="img" '
        f'aria-label="{escape(y_label)} against {escape(x_label)}">',
        f'<rect x="{ml}" y="{mt}" width="{width - ml - mr}" height="{height - mt - mb}" '
        f'fill="#fafbfc" stroke="#d8dde3"/>',
    ]
    for t in sx.ticks():
        px = sx(t)
        out.append(
            f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{mt}" '
            f'y2="{height - mb}" stroke="#e6e9ed"/>'
        )
        out.append(
            f'<text class="tick" x="{px:.1f}" y="{height - mb + 18}" '
            f'text-anchor="middle">{escape(_tick_label(t, True))}</text>'
        )
    yticks = sy.ticks()
    ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
    for t in yticks:
        py = sy(t)
        out.append(
            f'<line class="grid" x1="{ml}" x2="{width - mr}" y1="{py:.1f}" '
            f'y2="{py:.1f}" stroke="#e6e9ed"/>'
        )
        out.append(
            f'<text class="tick" x="{ml - 8}" y="{py + 4:.1f}" '
            f'text-anchor="end">{escape(_tick_label(t, False, ystep))}</text>'
        )
    out.append(
        f'<text class="axis-label" x="{(ml + width - mr) / 2:.0f}" y="{height - 12}" '
        f'text-anchor="middle">{escape(x_label)}{" (log scale)" if log else ""}</text>'
    )
    out.append(
        f'<text class="axis-label" transform="translate(16 {(mt + height - mb) / 2:.0f}) '
        f'rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
    )
    if band is not None:
        x0, x1 = (sx(band.x[0]), sx(band.x[1])) if band.x else (ml, width - mr)
        y0, y1 = sorted((sy(band.y[0]), sy(band.y[1])))
        out.append(
            f'<rect class="noise-band" x="{min(x0, x1):.1f}" y="{y0:.1f}" '
            f'width="{max(abs(x1 - x0), 2):.1f}" height="{max(y1 - y0, 2):.1f}" fill="{ORANGE}" '
            f'fill-opacity="0.18" stroke="{ORANGE}" stroke-opacity="0.6"><title>noise band: '
            f"differences inside it are within the measured noise (ties)</title></rect>"
        )
    if bound is not None and not on_chart:
        below = (bound[0] < min(ys)) == higher_is_better
        out.append(
            f'<text class="bound-label off-chart" x="{width - mr - 6}" '
            f'y="{height - mb - 6 if below else mt + 14}" text-anchor="end" fill="{RED}">'
            f"{escape(bound[1])} ({_tick_label(bound[0], False, 0.01)}, off the chart)</text>"
        )
    if bound is not None and on_chart:
        by = sy(bound[0])
        out.append(
            f'<line class="quality-bound" x1="{ml}" x2="{width - mr}" y1="{by:.1f}" '
            f'y2="{by:.1f}" stroke="{RED}" stroke-width="1.5" stroke-dasharray="2 3"/>'
        )
        out.append(
            f'<text class="bound-label" x="{width - mr - 6}" y="{by - 5:.1f}" '
            f'text-anchor="end" fill="{RED}">{escape(bound[1])}</text>'
        )
    for d in dots:
        if d.x_ci:
            y = sy(d.y)
            a, b = sx(max(d.x_ci[0], 1e-300)), sx(d.x_ci[1])
            out.append(
                f'<path class="whisker" d="M{a:.1f},{y:.1f} H{b:.1f} M{a:.1f},{y - 4:.1f} '
                f'V{y + 4:.1f} M{b:.1f},{y - 4:.1f} V{y + 4:.1f}" stroke="#52606d" '
                f'fill="none"/>'
            )
        if d.y_ci:
            x = sx(d.x)
            a, b = sy(d.y_ci[0]), sy(d.y_ci[1])
            out.append(
                f'<path class="whisker" d="M{x:.1f},{a:.1f} V{b:.1f} M{x - 4:.1f},{a:.1f} '
                f'H{x + 4:.1f} M{x - 4:.1f},{b:.1f} H{x + 4:.1f}" stroke="#52606d" '
                f'fill="none"/>'
            )
    front = sorted((d for d in dots if d.on_front), key=lambda d: (d.x, d.y))
    if front:
        path = f"M{sx(front[0].x):.1f},{sy(front[0].y):.1f}"
        for d in front[1:]:  # step: pay more (right), then gain quality (up)
            path += f" H{sx(d.x):.1f} V{sy(d.y):.1f}"
        path += f" H{width - mr}"  # the last point dominates everything to its right
        out.append(
            f'<path class="pareto-front" d="{path}" fill="none" stroke="{BLUE}" '
            f'stroke-width="2" stroke-dasharray="6 3"/>'
        )
    order = {"candidate": 0, "baseline": 1, "chosen": 2}  # marked points drawn on top
    for d in sorted(dots, key=lambda d: order.get(d.kind, 0)):
        out.append(_marker(d, sx(d.x), sy(d.y)))
    out.append(
        _legend(
            width - mr + 22,
            mt + 8,
            any(d.kind == "baseline" for d in dots),
            any(d.kind == "chosen" for d in dots),
            bool(front),
            bound is not None and on_chart,
            band is not None,
        )
    )
    out.append("</svg>")
    return "\n".join(out)


def _legend(
    x: float, y: float, baseline: bool, chosen: bool, front: bool, bound: bool, band: bool
) -> str:
    rows = [("circle", BLUE, "on the Pareto front"), ("circle", GREY, "dominated")]
    if front:
        rows.append(("line", BLUE, "Pareto front"))
    if bound:
        rows.append(("bound", RED, "quality bound"))
    if band:
        rows.append(("band", ORANGE, "noise band (ties)"))
    if baseline:
        rows.append(("diamond", RED, "baseline"))
    if chosen:
        rows.append(("star", ORANGE, "chosen"))
    out = [
        f'<g class="legend" transform="translate({x:.0f} {y:.0f})">',
        f'<rect x="-8" y="-6" width="170" height="{len(rows) * 18 + 6}" rx="4" '
        f'fill="#fff" fill-opacity="0.9" stroke="#d8dde3"/>',
    ]
    for i, (shape, color, text) in enumerate(rows):
        cy = 6 + i * 18
        if shape == "circle":
            out.append(f'<circle cx="4" cy="{cy}" r="5" fill="{color}"/>')
        elif shape == "line":
            out.append(
                f'<line x1="-4" x2="12" y1="{cy}" y2="{cy}" stroke="{color}" '
                f'stroke-width="2" stroke-dasharray="6 3"/>'
            )
        elif shape == "bound":
            out.append(
                f'<line x1="-4" x2="12" y1="{cy}" y2="{cy}" stroke="{color}" '
                f'stroke-width="1.5" stroke-dasharray="2 3"/>'
            )
        elif shape == "band":
            out.append(
                f'<rect x="-3" y="{cy - 6}" width="14" height="12" fill="{color}" '
                f'fill-opacity="0.25" stroke="{color}"/>'
            )
        elif shape == "diamond":
            out.append(f'<polygon points="4,{cy - 6} 10,{cy} 4,{cy + 6} -2,{cy}" fill="{color}"/>')
        else:
            out.append(f'<polygon points="{_star(4, cy, 7)}" fill="{color}" stroke="#6b4c00"/>')
        out.append(f'<text x="20" y="{cy + 4}">{escape(text)}</text>')
    out.append("</g>")
    return "\n".join(out)
