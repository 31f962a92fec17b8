"""The inline SVG chart of the HTML report: quality against cost, with the Pareto front, the
quality bound and the noise band. The geometry is computed here and drawn by the Jinja2
template ``templates/scatter.svg.j2`` (autoescape on); no JavaScript, no external resources.
(The cost breakdown is plain HTML in the page's template.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from frugalml import units
from frugalml.report.jinja import template

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


def _marker(dot: Dot, cx: float, cy: float) -> dict[str, Any]:
    """What the template draws for one point: a diamond (baseline), a star (chosen) or a
    circle (blue on the front, grey when dominated)."""
    mark: dict[str, Any] = {"dot": dot, "cx": f"{cx:.1f}", "cy": f"{cy:.1f}"}
    if dot.kind == "baseline":
        r = 8
        mark["points"] = (
            f"{cx:.1f},{cy - r:.1f} {cx + r:.1f},{cy:.1f} "
            f"{cx:.1f},{cy + r:.1f} {cx - r:.1f},{cy:.1f}"
        )
        mark |= {"fill": RED, "stroke": "#fff", "stroke_width": 1.5}
    elif dot.kind == "chosen":
        mark |= {"points": _star(cx, cy, 9), "fill": ORANGE, "stroke": "#6b4c00", "stroke_width": 1}
    else:
        mark["fill"] = BLUE if dot.on_front else GREY
    return mark


def _legend(front: bool, bound: bool, band: bool, baseline: bool, chosen: bool) -> list[Any]:
    rows = [("circle", BLUE, "on the Pareto front"), ("circle", GREY, "dominated")]
    rows += [("line", BLUE, "Pareto front")] if front else []
    rows += [("bound", RED, "quality bound")] if bound else []
    rows += [("band", ORANGE, "noise band (ties)")] if band else []
    rows += [("diamond", RED, "baseline")] if baseline else []
    rows += [("star", ORANGE, "chosen")] if chosen else []
    return [
        {
            "shape": shape,
            "color": color,
            "text": text,
            "cy": 6 + i * 18,
            "star": _star(4, 6 + i * 18, 7),
        }
        for i, (shape, color, text) in enumerate(rows)
    ]


def _template() -> jinja2.Template:
    return template("scatter.svg.j2")


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
    the chosen point (``band``) and each point's measured intervals as whiskers; a legend.
    The geometry is computed here; ``templates/scatter.svg.j2`` draws it."""
    ml, mr, mt, mb = 72, 200, 22, 54  # the legend sits in the right margin
    view: dict[str, Any] = {
        "width": width, "height": height, "ml": ml, "mr": mr, "mt": mt, "mb": mb,
        "x_label": x_label, "y_label": y_label, "dots": bool(dots),
    }  # fmt: skip
    if not dots:
        return str(_template().render(v=view))
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
    yticks = sy.ticks()
    ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
    view["log"] = log
    view["xticks"] = [(f"{sx(t):.1f}", _tick_label(t, True)) for t in sx.ticks()]
    view["yticks"] = [(f"{sy(t):.1f}", _tick_label(t, False, ystep)) for t in yticks]
    view["band"] = None
    if band is not None:
        x0, x1 = (sx(band.x[0]), sx(band.x[1])) if band.x else (ml, width - mr)
        y0, y1 = sorted((sy(band.y[0]), sy(band.y[1])))
        view["band"] = {
            "x": f"{min(x0, x1):.1f}", "y": f"{y0:.1f}",
            "w": f"{max(abs(x1 - x0), 2):.1f}", "h": f"{max(y1 - y0, 2):.1f}",
        }  # fmt: skip
    view["bound"] = None
    if bound is not None and on_chart:
        view["bound"] = {"y": f"{sy(bound[0]):.1f}", "text": bound[1], "off": False}
    elif bound is not None:
        below = (bound[0] < min(ys)) == higher_is_better
        text = f"{bound[1]} ({_tick_label(bound[0], False, 0.01)}, off the chart)"
        view["bound"] = {"y": height - mb - 6 if below else mt + 14, "text": text, "off": True}
    whiskers = []
    for d in dots:
        if d.x_ci:
            y, a, b = sy(d.y), sx(max(d.x_ci[0], 1e-300)), sx(d.x_ci[1])
            whiskers.append(
                f"M{a:.1f},{y:.1f} H{b:.1f} M{a:.1f},{y - 4:.1f} V{y + 4:.1f} "
                f"M{b:.1f},{y - 4:.1f} V{y + 4:.1f}"
            )
        if d.y_ci:
            x, a, b = sx(d.x), sy(d.y_ci[0]), sy(d.y_ci[1])
            whiskers.append(
                f"M{x:.1f},{a:.1f} V{b:.1f} M{x - 4:.1f},{a:.1f} H{x + 4:.1f} "
                f"M{x - 4:.1f},{b:.1f} H{x + 4:.1f}"
            )
    view["whiskers"] = whiskers
    front = sorted((d for d in dots if d.on_front), key=lambda d: (d.x, d.y))
    view["front"] = None
    if front:
        path = f"M{sx(front[0].x):.1f},{sy(front[0].y):.1f}"
        for d in front[1:]:  # step: pay more (right), then gain quality (up)
            path += f" H{sx(d.x):.1f} V{sy(d.y):.1f}"
        view["front"] = path + f" H{width - mr}"  # the last point dominates all to its right
    order = {"candidate": 0, "baseline": 1, "chosen": 2}  # marked points drawn on top
    view["markers"] = [
        _marker(d, sx(d.x), sy(d.y)) for d in sorted(dots, key=lambda d: order.get(d.kind, 0))
    ]
    view["legend"] = _legend(
        bool(front),
        bound is not None and on_chart,
        band is not None,
        any(d.kind == "baseline" for d in dots),
        any(d.kind == "chosen" for d in dots),
    )
    view["colors"] = {"blue": BLUE, "grey": GREY, "red": RED, "orange": ORANGE}
    return str(_template().render(v=view))
