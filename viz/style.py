"""The one colour scale every picture shares, edge widths, and the legend.

Colour = log10 ||dL/dv|| on a FIXED range (`LOG10_MIN`..`LOG10_MAX`, one colour band per decade), so
the RNN, LSTM and GRU pictures compare directly: a vanished gradient fades to cream, a live one is
dark red. Pure Python: no graphviz or matplotlib needed to pick colours.
"""
from __future__ import annotations

import math
from html import escape

LOG10_MIN = -8.0  # norms at or below 1e-8 share the palest colour
LOG10_MAX = 0.0   # norms at or above 1 share the darkest colour
# ColorBrewer YlOrRd (9 classes): luminance falls monotonically from the first stop to the last.
STOPS = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#bd0026", "#800026")
NO_GRAD = "#ffffff"     # tensors that need no gradient (data, constants)
EDGE = "#6b6b6b"
SHARED_EDGE = "#c4c4c4"  # from a tensor shared by all steps (x projected once) into one step
STATE_EDGE = "#1f5fa8"  # recurrent chain h_k -> h_{k+1}
LANE_EDGE = "#1a9850"   # LSTM cell path / GRU carry path
CLUSTER_MODULE = "#8c8c8c"
CLUSTER_STEP_BG = "#f5f6f8"


def _rgb(hexcol: str) -> tuple[int, int, int]:
    return int(hexcol[1:3], 16), int(hexcol[3:5], 16), int(hexcol[5:7], 16)


def luminance(hexcol: str) -> float:
    """Perceived brightness in [0, 1] (Rec. 601 weights)."""
    r, g, b = _rgb(hexcol)
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255


def scale_position(norm: float | None) -> float | None:
    """Where `norm` sits on the shared scale: (log10 norm - LOG10_MIN) / range, clipped to [0, 1]."""
    if norm is None or not math.isfinite(norm):
        return None
    lg = math.log10(norm) if norm > 0 else LOG10_MIN
    return min(1.0, max(0.0, (lg - LOG10_MIN) / (LOG10_MAX - LOG10_MIN)))


def grad_color(norm: float | None) -> str:
    """Fill colour for a gradient norm (linear RGB interpolation between the stops: monotone)."""
    pos = scale_position(norm)
    if pos is None:
        return NO_GRAD
    x = pos * (len(STOPS) - 1)
    i = min(int(x), len(STOPS) - 2)
    f = x - i
    a, b = _rgb(STOPS[i]), _rgb(STOPS[i + 1])
    return "#%02x%02x%02x" % tuple(round(u + (v - u) * f) for u, v in zip(a, b))


def font_color(fill: str) -> str:
    return "#ffffff" if luminance(fill) < 0.45 else "#1a1a1a"


def edge_width(norm: float | None) -> float:
    """Edge pen width: 0.5 (vanished or no gradient) .. 4.5 (norm >= 1), linear in log10 norm."""
    pos = scale_position(norm)
    return 0.5 if pos is None else round(0.5 + 4.0 * pos, 2)


def fmt(x: float | None) -> str:
    """Short number for labels: 3.1e-04, 0.93, 12."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if x == 0:
        return "0"
    ax = abs(x)
    if 1e-2 <= ax < 1e3:
        return f"{x:.3g}"
    return f"{x:.1e}"


def legend_html(lines: list[tuple[str, str]] | None = None, title: str = "‖∂L/∂v‖ (log scale, shared by every picture)") -> str:
    """Graphviz HTML label: the colour scale (one cell per decade) and extra explanation rows.

    `lines` is a list of (html-escaped text, font colour).
    """
    n = int(LOG10_MAX - LOG10_MIN)
    cells = []
    for k in range(n + 1):
        e = int(LOG10_MIN) + k
        col = grad_color(10.0 ** e)
        lab = ("≤" if k == 0 else "≥" if k == n else "") + f"1e{e}"
        cells.append(f'<TD BGCOLOR="{col}" WIDTH="46"><FONT COLOR="{font_color(col)}" POINT-SIZE="9">{lab}</FONT></TD>')
    rows = [f'<TR><TD COLSPAN="{n + 1}" ALIGN="LEFT"><B>{escape(title)}</B></TD></TR>',
            "<TR>" + "".join(cells) + "</TR>",
            f'<TR><TD COLSPAN="{n + 1}" ALIGN="LEFT"><FONT POINT-SIZE="10">white: needs no gradient · '
            "edge width ∝ log ‖gradient flowing along the edge‖</FONT></TD></TR>"]
    for text, colour in lines or []:
        rows.append(f'<TR><TD COLSPAN="{n + 1}" ALIGN="LEFT"><FONT POINT-SIZE="10" COLOR="{colour}">{text}</FONT></TD></TR>')
    return '<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="1" CELLPADDING="3" COLOR="#999999">' + "".join(rows) + "</TABLE>>"


def strip_html(rows: list[tuple[str, list[tuple[str, float | None]]]]) -> str:
    """Graphviz HTML label: one row per recurrent chain, one coloured cell per (binned) step.

    `rows` = [(row title, [(cell header e.g. "t=17", norm), ...]), ...].
    """
    ncol = max(len(c) for _, c in rows)
    out = []
    for title, cells in rows:
        head = [f'<TD ALIGN="RIGHT" ROWSPAN="2"><FONT POINT-SIZE="10"><B>{escape(title)}</B></FONT></TD>']
        vals = []
        for h, v in cells:
            col = grad_color(v)
            head.append(f'<TD><FONT POINT-SIZE="8" COLOR="#555555">{escape(h)}</FONT></TD>')
            vals.append(f'<TD BGCOLOR="{col}" WIDTH="40"><FONT POINT-SIZE="8" COLOR="{font_color(col)}">{fmt(v)}</FONT></TD>')
        pad = "<TD></TD>" * (ncol - len(cells))
        out.append("<TR>" + "".join(head) + pad + "</TR>")
        out.append("<TR>" + "".join(vals) + pad + "</TR>")
    return '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="2" COLOR="#bbbbbb">' + "".join(out) + "</TABLE>>"
