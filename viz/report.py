"""index.html for `tinygrad-seq vanishing`: the three graphs side by side, the plots, the table and
a short explanation of why gradients vanish."""
from __future__ import annotations

from html import escape
from pathlib import Path

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


_CSS = """body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1600px}
.row{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}.col{flex:1;min-width:320px}
.col img{width:100%;border:1px solid #ddd}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}code{background:#f6f6f6}
.plots img{max-width:48%;border:1px solid #eee}"""


def _picture(title: str, f: str) -> str:
    if f.endswith(".dot"):  # rendered without the `dot` program: link the source instead of a broken image
        return (f'<p><a href="{escape(f)}">DOT source</a> (install Graphviz for the picture: '
                f'<code>sudo apt-get install graphviz</code>, then re-run the command)</p>')
    return f'<a href="{escape(f)}"><img src="{escape(f)}" alt="{escape(title)}"></a>'


def write_index(out: Path, graphs: list[tuple[str, str]], plots: list[tuple[str, str]], table: list[list[str]],
                header: list[str], command: str) -> Path:
    """`graphs`/`plots`: (title, file name relative to `out`). Returns the path of index.html."""
    out = Path(out)
    cols = "".join(f'<div class="col"><h3>{escape(t)}</h3>{_picture(t, f)}</div>' for t, f in graphs)
    pl = "".join(f'<a href="{escape(f)}"><img src="{escape(f)}" alt="{escape(t)}" title="{escape(t)}"></a>'
                 for t, f in plots)
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in table)
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>Vanishing gradients: RNN vs LSTM vs GRU</title>
<style>{_CSS}</style></head><body>
<h1>Vanishing gradients through time: RNN vs LSTM vs GRU</h1>
<p><code>{escape(command)}</code></p>
<h2>‖∂L/∂h<sub>t</sub>‖ for a loss on the last step</h2>
<table><tr>{''.join(f'<th>{escape(h)}</th>' for h in header)}</tr>{rows}</table>
<h3>What the numbers mean</h3>{definitions_html()}
<div class="plots">{pl}</div>
<h2>Why gradients vanish</h2>{EXPLANATION}
<h2>The unrolled computation graphs</h2><div class="row">{cols}</div>
</body></html>"""
    path = out / "index.html"
    path.write_text(html, encoding="utf-8")
    return path
