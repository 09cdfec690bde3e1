"""Inline SVG charts (no JavaScript, no CDN): horizontal bars and histograms.

The SVG uses presentation attributes only (no ``style=``), so it renders under
the app's strict Content-Security-Policy.

>>> svg = bars([("flan2021", 40), ("niv2", 20)])
>>> svg.startswith("<svg") and "flan2021" in svg
True
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import escape

PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")


def bars(
    items: Sequence[tuple[str, float]],
    *,
    width: int = 560,
    label_width: int = 200,
    bar_height: int = 18,
    fmt: str = "{:,.0f}",
    title: str = "",
) -> str:
    """Horizontal bars, one per ``(label, value)``, scaled to the largest value."""
    top = max((v for _, v in items), default=0) or 1
    span = width - label_width - 90
    h = bar_height + 6
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{h * len(items) + 8}" viewBox="0 0 {width} {h * len(items) + 8}">'
    ]
    if title:
        out.append(f"<title>{escape(title)}</title>")
    for i, (label, v) in enumerate(items):
        y = 4 + i * h
        w = max(1.0, span * v / top) if v else 0
        color = PALETTE[i % len(PALETTE)]
        lab = str(label) if len(str(label)) <= 30 else str(label)[:29] + "…"
        out.append(
            f'<text x="{label_width - 6}" y="{y + bar_height - 5}" text-anchor="end" '
            f'font-size="12" fill="#333">{escape(lab)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{color}">'
            f"<title>{escape(str(label))}: {escape(fmt.format(v))}</title></rect>"
            f'<text x="{label_width + w + 6:.1f}" y="{y + bar_height - 5}" font-size="12" '
            f'fill="#333">{escape(fmt.format(v))}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def histogram(
    values: Sequence[int], *, bins: int = 30, width: int = 460, height: int = 160, label: str = ""
) -> str:
    """A histogram of non-negative integers with ``bins`` equal-width bins."""
    if not values:
        return '<p class="muted">no values</p>'
    lo, hi = min(values), max(values)
    step = max(1, -(-(hi - lo + 1) // bins))
    counts = [0] * (-(-(hi - lo + 1) // step))
    for v in values:
        counts[(v - lo) // step] += 1
    top = max(counts)
    pad_b, pad_l = 22, 40
    bw = (width - pad_l) / len(counts)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(label)}</title>'
    ]
    for i, c in enumerate(counts):
        bh = (height - pad_b - 8) * c / top
        x0 = lo + i * step
        out.append(
            f'<rect x="{pad_l + i * bw:.1f}" y="{height - pad_b - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{bh:.1f}" fill="#4477aa"><title>{x0}–{x0 + step - 1}: {c}</title></rect>'
        )
    out.append(
        f'<text x="{pad_l}" y="{height - 6}" font-size="11" fill="#333">{lo}</text>'
        f'<text x="{width}" y="{height - 6}" font-size="11" fill="#333" text-anchor="end">{hi}</text>'
        f'<text x="{pad_l - 4}" y="14" font-size="11" fill="#333" text-anchor="end">{top}</text>'
        f'<text x="{(width + pad_l) / 2:.0f}" y="{height - 6}" font-size="11" fill="#333" '
        f'text-anchor="middle">{escape(label)}</text></svg>'
    )
    return "".join(out)
