"""index.html for `tinygrad-seq vanishing`: the table, the plots, a short explanation of why gradients
vanish, a link to the interactive explorer (explore.html) and the graphs, one per row at the full page
width, each in a pan/zoom viewer (pagekit.py)."""
from __future__ import annotations

from html import escape
from pathlib import Path

from .pagekit import BASE_CSS, PANZOOM_JS, viewer

EXPLANATION = """
<p>Backpropagation through time multiplies one Jacobian per step:
<code>∂L/∂h<sub>k</sub> = (∏<sub>j=k+1..T</sub> ∂h<sub>j</sub>/∂h<sub>j-1</sub>)<sup>T</sup> ∂L/∂h<sub>T</sub></code>.
For a plain RNN, <code>h<sub>j</sub> = tanh(W<sub>hh</sub> h<sub>j-1</sub> + U x<sub>j</sub> + b)</code>, so each factor
is <code>diag(tanh′)·W<sub>hh</sub></code>. Its norm is at most <code>σ<sub>max</sub>(W<sub>hh</sub>)·γ</code>
(γ = 1 for tanh, ¼ for sigmoid): when that is below 1 the gradient must shrink geometrically with the distance
to the loss (Pascanu, Mikolov &amp; Bengio, 2013, <i>On the difficulty of training recurrent neural networks</i>).
That is a <b>sufficient condition</b>, not a prediction: at the default init σ<sub>max</sub>·γ is just above 1
and the gradient still shrinks fast (the table), because what sets the rate is the spectral radius of the
average step Jacobian, ρ(diag(mean tanh′)·W<sub>hh</sub>) (at init about ρ(W<sub>hh</sub>)·mean tanh′). The table
puts the measured rate next to that <b>mean-field prediction</b>, for every cell; the legend of the RNN graph
checks every step Jacobian against the bound.</p>
<p>The LSTM adds a second path, the cell state <code>c<sub>t</sub> = f<sub>t</sub> ∗ c<sub>t-1</sub> + i<sub>t</sub> ∗ g<sub>t</sub></code>
(the green lane). Along it alone the Jacobian is <code>diag(f<sub>t</sub>)</code>: no weight matrix and no squashing
derivative, so each unit keeps the product of its own forget gates, and the norm of the gradient is set by the
units whose gates stay highest (the <i>mean</i> gate f̄ predicts nothing: a product of numbers is not their
mean to a power). A forget gate near 1 (bias 1 to 5) carries the gradient over long distances (Hochreiter &amp;
Schmidhuber, 1997; Gers et al., 2000). The GRU carry gate plays the same role:
<code>h<sub>t</sub> = (1 − z<sub>t</sub>) ∗ n<sub>t</sub> + z<sub>t</sub> ∗ h<sub>t-1</sub></code>. The path through h adds
to the lane: at init it carries much of the gradient (the mean-field prediction, which includes it, matches there;
the lane alone is too fast), after training the lane carries it (the lane alone matches the trained LSTM, whose
time-varying gates the mean-field average misses).</p>
<p>Colours use one fixed log scale in every picture (cream ≤ 10<sup>-8</sup>, dark red ≥ 1), so the three
graphs compare directly. Folded boxes stand for runs of identical time steps and repeat the chain's ×r per step.
The strip under each graph shows ‖∂L/∂h<sub>t</sub>‖ for every step.</p>
"""


def definitions_html() -> str:
    """The one definition of each number (grads.DEFINITIONS), as the page prints it."""
    from .grads import DEFINITIONS
    return "<ul class=\"defs\">" + "".join(f"<li>{escape(v)}</li>" for v in DEFINITIONS.values()) + "</ul>"

_CSS = BASE_CSS + """
.graph{margin:18px 0 30px}.graph h3{margin:6px 0}
.plots{display:flex;flex-wrap:wrap;gap:12px;margin-top:14px}
.plots a{flex:0 1 calc(50% - 6px);min-width:480px;max-width:825px}.plots img{width:100%;border:1px solid #eee}
.explore{background:#eef6ee;border:1px solid #9c9;padding:8px 12px;display:inline-block}"""

def _picture(title: str, f: str) -> str:
    if f.endswith(".dot"):  # rendered without the `dot` program: link the source instead of a broken image
        return (f'<p><a href="{escape(f)}">DOT source</a> (install Graphviz for the picture: '
                f'<code>sudo apt-get install graphviz</code>, then re-run the command)</p>')
    return viewer(f, title)

def write_index(out: Path, graphs: list[tuple[str, str]], plots: list[tuple[str, str]], table: list[list[str]],
                header: list[str], command: str, explore: str = "explore.html") -> Path:
    """`graphs`/`plots`: (title, file name relative to `out`); `explore`: the explorer page the index links
    to (written by `tinygrad-seq explore --out <the same directory>`). Returns the path of index.html."""
    out = Path(out)
    rows_g = "".join(f'<section class="graph"><h3>{escape(t)}</h3>{_picture(t, f)}</section>' for t, f in graphs)
    pl = "".join(f'<a href="{escape(f)}"><img src="{escape(f)}" alt="{escape(t)}" title="{escape(t)}"></a>'
                 for t, f in plots)
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in table)
    have = (out / explore).exists()
    link = (f'<p class="explore"><b><a id="explore-link" href="{escape(explore)}">Open the interactive explorer</a></b>: '
            f'move sliders for T, hidden size, forget-gate bias, σ<sub>max</sub>(W<sub>hh</sub>), cell and training '
            f'steps and watch ‖∂L/∂h<sub>t</sub>‖ change' +
            ("" if have else f' (written by <code>tinygrad-seq explore --out {escape(str(out))}</code>)') + "</p>")
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>Vanishing gradients: RNN vs LSTM vs GRU</title>
<style>{_CSS}</style><script>{PANZOOM_JS}</script></head><body>
<div class="text">
<h1>Vanishing gradients through time: RNN vs LSTM vs GRU</h1>
<p><code>{escape(command)}</code></p>
{link}
<h2>‖∂L/∂h<sub>t</sub>‖ for a loss on the last step</h2>
<table><tr>{''.join(f'<th>{escape(h)}</th>' for h in header)}</tr>{rows}</table>
<h3>What the numbers mean</h3>{definitions_html()}
</div>
<div class="plots">{pl}</div>
<div class="text"><h2>Why gradients vanish</h2>{EXPLANATION}</div>
<h2>The unrolled computation graphs</h2>
{rows_g}
</body></html>"""
    path = out / "index.html"
    path.write_text(html, encoding="utf-8")
    return path
