"""The interactive explorer behind `tinygrad-seq explore`: a grid of vanishing-gradient measurements
precomputed by the engine, embedded as JSON in one self-contained explore.html (no server, no network).

For every setting of the grid -- cell (rnn/lstm/gru) x hidden size H x the cell's knob (RNN:
sigma_max(W_hh), LSTM: forget-gate bias) x Adam steps trained x sequence length T -- a probe
(experiments.Probe: ŷ = W h_T + b, L = mean (ŷ - y)²) is measured on one batch: ||dL/dh_t|| for every t,
||dL/dc_t|| for the LSTM, and the theory printed beside them (`setting_numbers`: experiments.theory, in the
words of grads.DEFINITIONS, which the page prints once). The page's sliders
pick a setting and redraw the curves from the JSON at once. A subset of settings also carries the
unrolled graph (draw_graph, as SVG) for the chosen cell, knob and training.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Callable

import numpy as np

import tinygrad_seq as tg

from . import experiments as E
from .pagekit import BASE_CSS, PANZOOM_JS, viewer
from .report import definitions_html

CELLS = ("rnn", "lstm", "gru")
DataFn = Callable[[int, int, np.random.Generator], "tuple[np.ndarray, np.ndarray]"]


@dataclass
class Grid:
    """The settings precomputed. `sigmas`: sigma_max(W_hh) of the RNN, its random init rescaled to it
    (None = the init as it is); `forget_biases`: LSTM(forget_bias=b), b added to the random b_f at init
    (as `tinygrad-seq vanishing --forget-bias`); `train_steps`: Adam steps on the data at length
    `train_T` (batch 32) before measuring; each setting is measured on `batch_size` sequences.
    Graphs are drawn at T = `graph_T`, H = `graph_H`, for the first and last of `train_steps`."""
    seq_lens: tuple = (10, 25, 50, 100)
    hiddens: tuple = (8, 16, 32)
    sigmas: tuple = (None, 0.5, 0.9, 1.0, 1.1, 1.5)
    forget_biases: tuple = (0.0, 1.0, 2.0, 3.0, 5.0)
    train_steps: tuple = (0, 20, 60)
    train_T: int = 20
    batch_size: int = 8
    seed: int = 0
    graph_T: int = 12
    graph_H: int = 16
    keep_steps: int = 2
    graphs: bool = True

    def knobs(self, cell: str) -> tuple:
        return {"rnn": self.sigmas, "lstm": self.forget_biases}.get(cell, (None,))

    def size(self) -> int:
        """Number of (cell, H, knob) models: one training run each."""
        return len(self.hiddens) * sum(len(self.knobs(c)) for c in CELLS)


QUICK = Grid(seq_lens=(8, 16), hiddens=(8, 16), sigmas=(None, 0.5, 1.5), forget_biases=(0.0, 1.0, 3.0),
             train_steps=(0, 5), train_T=8, batch_size=4, graph_T=6, graph_H=8)


def run_key(cell: str, H: int, knob: int, steps: int, T: int) -> str:
    """Key of one measured setting in the page's JSON (`knob` = index into Grid.knobs(cell))."""
    return f"{cell}|{H}|{knob}|{steps}|{T}"


def graph_key(cell: str, knob: int, steps: int) -> str:
    return f"{cell}|{knob}|{steps}"


def make_probe(cell: str, hidden: int, knob, seed: int) -> E.Probe:
    """The probe of one grid setting, seeded like `tinygrad-seq vanishing` (same init for the same seed)."""
    tg.manual_seed(seed)
    model = E.Probe(cell, hidden, **({"forget_bias": float(knob)} if cell == "lstm" and knob else {}))
    if cell == "rnn" and knob is not None:  # rescale W_hh: every singular value times knob / sigma_max
        w = model.rnn.weight_hh_l0.numpy()
        w *= knob / np.linalg.norm(w.astype(np.float64), 2)
    return model


# The Theory fields the page prints (grads.Theory; the words and definitions are grads.DEFINITIONS).
SHOWN = ("rate", "half_life", "predicted_rate", "predicted_half_life", "spectral_radius",
         "sigma_max", "gamma", "pascanu", "rho_w", "mean_dphi", "rho_w_dphi", "max_jacobian", "violations",
         "lane_chain", "lane_measured", "lane_rate", "lane_half_life", "dominant_gate", "mean_gate")


def setting_numbers(m: E.Measurement) -> dict:
    """The numbers the page prints beside a curve: the one place that picks them, all from `m.theory`
    (experiments.theory, words and definitions in grads.DEFINITIONS).

    rate, half_life: measured ×r per step on the h chain and ln 0.5 / ln r; predicted_*: the mean-field
    prediction (loss gradient carried back through J̄), spectral_radius ρ(J̄) its far-from-the-loss rate;
    RNN: pascanu = σ_max(W_hh)·γ (a sufficient condition, not a prediction) and the largest step Jacobian;
    LSTM/GRU: the lane alone (per-unit gate product) next to the lane's measured ×r. *_error: relative
    error of the predicted half-life against the measured one (Theory.error)."""
    th = m.theory
    if th is None:
        raise ValueError("setting_numbers: the measurement has no theory (measure(..., with_theory=True))")
    d = th.as_dict()
    return {"loss": m.loss, **{k: d[k] for k in SHOWN},
            "predicted_error": th.error("predicted"), "lane_error": th.error("lane")}


def _r(v, digits: int = 4):
    """A float rounded to `digits` significant digits (JSON stays small); None/nan -> None, ±inf -> "inf"
    / "-inf" (JSON has no infinity; the page reads them back); strings, ints and lists pass through."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, (list, tuple)):
        return [_r(x, digits) for x in v]
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(f"{v:.{digits}g}")


def _svg_text(graph) -> str | None:
    """The graph as SVG text for inlining (comments and the XML prolog dropped), or None without `dot`."""
    import graphviz
    try:
        svg = graph.pipe(format="svg").decode("utf-8")
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError):
        return None
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = svg[svg.index("<svg"):]
    return re.sub(r">\s+<", "><", svg)


def knob_label(cell: str, knob) -> str:
    if cell == "rnn":
        return "σ_max(W_hh) as initialised" if knob is None else f"σ_max(W_hh) = {knob:g}"
    if cell == "lstm":
        return f"forget bias {knob:g}"
    return ""


def precompute(grid: Grid, data: DataFn, tick: Callable[[], None] | None = None) -> dict:
    """Measure every setting of `grid` on `data(n, T, rng) -> (x, y)`; the JSON the page embeds.

    One model per (cell, H, knob): measured at init on every T, then trained up to each of
    `grid.train_steps` (one continuing run) and measured again. `tick()` is called once per model."""
    steps = sorted(set(int(s) for s in grid.train_steps))
    batches = {T: data(grid.batch_size, T, np.random.default_rng(grid.seed)) for T in grid.seq_lens}
    gx = data(grid.batch_size, grid.graph_T, np.random.default_rng(grid.seed))
    runs: dict[str, dict] = {}
    graphs: dict[str, str] = {}
    no_dot = False
    for cell in CELLS:
        for H in grid.hiddens:
            for ki, knob in enumerate(grid.knobs(cell)):
                model = make_probe(cell, H, knob, grid.seed)
                train_rng = np.random.default_rng(grid.seed + 1)
                done = 0
                for n in steps:
                    if n > done:
                        E.train(model, (data(32, grid.train_T, train_rng) for _ in range(n - done)))
                        done = n
                    for T, (x, y) in batches.items():
                        m = E.measure(model, x, y)
                        runs[run_key(cell, H, ki, n, T)] = {
                            "h": [_r(v) for v in m.h], "c": None if m.c is None else [_r(v) for v in m.c],
                            **{k: _r(v) for k, v in setting_numbers(m).items()}}
                    if grid.graphs and not no_dot and H == grid.graph_H and n in (steps[0], steps[-1]):
                        svg = _draw(model, cell, knob, n, grid, gx)
                        no_dot = svg is None
                        if svg is not None:
                            graphs[graph_key(cell, ki, n)] = svg
                if tick is not None:
                    tick()
    axes = {"cell": list(CELLS), "T": list(grid.seq_lens), "H": list(grid.hiddens), "train": steps,
            "sigma": list(grid.sigmas), "fb": list(grid.forget_biases)}
    return {"axes": axes, "runs": runs, "graphs": graphs, "grid": asdict(grid),
            "graphs_missing": "Graphviz `dot` not found: no graphs" if no_dot else None}


def _draw(model, cell, knob, n, grid: Grid, gx) -> str | None:
    from .graph import draw_graph
    loss, _ = E.probe_loss(model, *gx)
    what = ", ".join(s for s in (knob_label(cell, knob), f"after {n} training steps" if n else "at init") if s)
    g = draw_graph(loss, model=model, keep_steps=grid.keep_steps,
                   title=f"{cell.upper()}, H={model.layer.hidden_size}, T={grid.graph_T}, {what}: loss on the last step")
    return _svg_text(g)


def write_explorer(out: str | Path, data: dict, command: str = "") -> Path:
    """Write `out`/explore.html around `data` (from `precompute`); returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    html = (_PAGE.replace("{{CSS}}", BASE_CSS + _CSS).replace("{{PANZOOM}}", PANZOOM_JS)
            .replace("{{COMMAND}}", escape(command)).replace("{{VIEWER}}", viewer("", "unrolled graph", 2.0, link=False))
            .replace("{{DEFS}}", definitions_html()).replace("{{JS}}", _JS).replace("{{DATA}}", blob))
    if not (out / "index.html").exists():  # explore run on its own: say where the main page comes from
        html = html.replace('<a href="index.html">Back to the main page</a>',
                            f"The main page (index.html) is written by <code>tinygrad-seq vanishing --out {escape(str(out))}</code>")
    path = out / "explore.html"
    path.write_text(html, encoding="utf-8")
    return path


_CSS = """
.panel{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}.controls{flex:0 1 470px;min-width:320px}
.ctl{margin:10px 0}.ctl label{display:block;font-size:14px}.ctl input[type=range]{width:100%}
.ctl .val{font-weight:bold}.plots2{flex:1;min-width:520px}svg.plot{width:100%;display:block;background:#fff;
border:1px solid #ddd}svg.plot text{font-size:12px;fill:#333}#nums td{text-align:right}#nums td:first-child{text-align:left}#nums td+td{white-space:nowrap}#nums tr.grp td{text-align:left;font-weight:bold;padding-top:8px;border-bottom:1px solid #ddd}
#nums{width:100%;border-collapse:collapse}#nums td{font-size:14px;padding:2px 4px}#nums td.sub{padding-left:14px}.defs li{margin:4px 0}.cells label{margin-right:12px}
.note{color:#555;font-size:13px}.legend{font-size:13px;margin:2px 0 12px}
.legend span{margin-right:16px;white-space:nowrap;display:inline-block}"""

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Explorer: gradients through time</title>
<style>{{CSS}}</style><script>{{PANZOOM}}</script></head><body>
<div class="text"><h1>Explorer: how much gradient survives T steps back</h1>
<p>A recurrent layer reads the adding problem and a linear head sees only its last state, so
‖∂L/∂h<sub>t</sub>‖ is the gradient that survives T−1−t steps of backpropagation through time. Every
curve below was measured by the engine beforehand (<code>{{COMMAND}}</code>); the sliders pick one.
<a href="index.html">Back to the main page</a>.</p></div>
<div class="panel">
<div class="controls">
<div class="ctl cells" id="cellctl">cell:
<label><input type="radio" name="cell" value="rnn"> tanh RNN</label>
<label><input type="radio" name="cell" value="lstm" checked> LSTM</label>
<label><input type="radio" name="cell" value="gru"> GRU</label></div>
<div class="ctl"><label for="s-T">sequence length T = <span class="val" id="v-T"></span></label><input type="range" id="s-T" min="0" step="1"></div>
<div class="ctl"><label for="s-H">hidden size H = <span class="val" id="v-H"></span></label><input type="range" id="s-H" min="0" step="1"></div>
<div class="ctl"><label for="s-fb">LSTM forget-gate bias (added to b<sub>f</sub> at init) = <span class="val" id="v-fb"></span></label><input type="range" id="s-fb" min="0" step="1"></div>
<div class="ctl"><label for="s-sigma">RNN σ<sub>max</sub>(W<sub>hh</sub>) (init rescaled) = <span class="val" id="v-sigma"></span></label><input type="range" id="s-sigma" min="0" step="1"></div>
<div class="ctl"><label for="s-train">Adam steps trained first = <span class="val" id="v-train"></span></label><input type="range" id="s-train" min="0" step="1"></div>
<table id="nums"></table>
<p class="note" id="train-note"></p>
</div>
<div class="plots2">
<svg class="plot" id="plot" data-h="360"></svg><div class="legend" id="plot-legend"></div>
<svg class="plot" id="ratio" data-h="230"></svg><div class="legend" id="ratio-legend"></div>
</div></div>
<div class="text" id="definitions"><h2>What the numbers mean</h2>
<p>The table and the plots use these definitions, the same ones as the graphs, <code>index.html</code> and the
README (<code>tinygrad_seq.viz.grads.DEFINITIONS</code>); every number comes from
<code>tinygrad_seq.viz.experiments.theory</code> on the setting's batch.</p>{{DEFS}}</div>
<h2>The unrolled graph <span class="note" id="gcap"></span></h2>
<div id="graph">{{VIEWER}}</div>
<script type="application/json" id="grid">{{DATA}}</script>
<script>{{JS}}</script>
</body></html>"""

# The page logic: read the grid, wire the sliders, and on every change redraw both plots, the numbers and
# the graph from the precomputed runs. Each plotted line keeps the values it draws in data-values (the
# browser test reads them back).
_JS = r"""(function(){
var D=JSON.parse(document.getElementById('grid').textContent),A=D.axes,G=D.grid;
var COL={rnn:'#d62728',lstm:'#1f77b4',gru:'#2ca02c'},NAME={rnn:'tanh RNN',lstm:'LSTM',gru:'GRU'};
var sl={},names=['T','H','fb','sigma','train'];
function lab(k,v){if(k==='sigma')return v===null?'as initialised':String(v);return String(v);}
function nearest(arr,v){var b=0;for(var i=0;i<arr.length;i++)if(Math.abs(arr[i]-v)<Math.abs(arr[b]-v))b=i;return b;}
names.forEach(function(k){var s=document.getElementById('s-'+k);s.max=A[k].length-1;sl[k]=s;
  var dl=document.createElement('datalist');dl.id='ticks-'+k;A[k].forEach(function(_,i){var op=document.createElement('option');
    op.value=i;dl.appendChild(op);});document.body.appendChild(dl);s.setAttribute('list',dl.id);  // a tick per precomputed value
  s.title=A[k].map(function(v){return lab(k,v);}).join(', ');s.addEventListener('input',update);});
sl.T.value=nearest(A.T,100);sl.H.value=nearest(A.H,32);sl.fb.value=nearest(A.fb,1);sl.sigma.value=0;sl.train.value=0;
Array.prototype.forEach.call(document.querySelectorAll('input[name=cell]'),function(r){r.addEventListener('change',update);});
function cur(){var c=document.querySelector('input[name=cell]:checked').value,o={cell:c};
  names.forEach(function(k){o[k]=+sl[k].value;});return o;}
function knob(c,o){return c==='rnn'?o.sigma:c==='lstm'?o.fb:0;}
function key(c,o){return [c,A.H[o.H],knob(c,o),A.train[o.train],A.T[o.T]].join('|');}
function fmt(v,d){if(v===null||v===undefined)return '–';var a=Math.abs(v);
  return (a!==0&&(a<1e-3||a>=1e4))?v.toExponential(1):v.toPrecision(d||3).replace(/(\.\d*?)0+$/,'$1').replace(/\.$/,'');}
function el(tag,at,txt){var e=document.createElementNS('http://www.w3.org/2000/svg',tag);
  for(var k in at)e.setAttribute(k,at[k]);if(txt!==undefined)e.textContent=txt;return e;}
function plot(svg,series,o){while(svg.firstChild)svg.removeChild(svg.firstChild);
  var W=Math.max(400,svg.clientWidth||760),H=+svg.dataset.h,L=70,R=16,T0=28,B=40;  // drawn in screen px: text stays 12px
  svg.setAttribute('viewBox','0 0 '+W+' '+H);svg.style.height=H+'px';
  var lo=Infinity,hi=-Infinity,n=1;series.forEach(function(s){n=Math.max(n,s.v.length);if(s.noscale)return;
    s.v.forEach(function(v){if(v>0){lo=Math.min(lo,v);hi=Math.max(hi,v);}});});
  if(!(lo<Infinity)){lo=1e-8;hi=1;}var a,b,ticks=[];
  if(o.lin){a=0;b=Math.max(o.yhi||1,Math.ceil(hi*4)/4);var st=b>2?0.5:0.25;for(var e=0;e<=b+1e-9;e+=st)ticks.push(e);}
  else{a=Math.floor(Math.log10(lo));b=Math.ceil(Math.log10(hi));if(b<=a)b=a+1;var stepd=Math.max(1,Math.ceil((b-a)/8));
    for(var e=a;e<=b;e+=stepd)ticks.push(Math.pow(10,e));}
  function X(t){return L+(W-L-R)*(n>1?t/(n-1):0);}
  function Y(v){return T0+(H-T0-B)*(o.lin?(b-v)/(b-a):(b-Math.log10(v))/(b-a));}
  ticks.forEach(function(v){svg.appendChild(el('line',{x1:L,x2:W-R,y1:Y(v),y2:Y(v),stroke:'#eee'}));
    var tx=el('text',{x:L-6,y:Y(v)+4,'text-anchor':'end'},o.lin?String(+v.toFixed(2)):'10');
    if(!o.lin)tx.appendChild(el('tspan',{dy:-6,'font-size':'9px'},String(Math.round(Math.log10(v)))));svg.appendChild(tx);});
  var tk=n>40?20:n>15?5:1;for(var t=0;t<n;t+=tk)svg.appendChild(el('text',{x:X(t),y:H-B+16,'text-anchor':'middle'},String(o.x0?t+o.x0:t)));
  svg.appendChild(el('text',{x:(L+W-R)/2,y:H-6,'text-anchor':'middle'},o.xlabel));
  svg.appendChild(el('text',{x:L,y:18,'font-weight':'bold'},o.title));
  svg.appendChild(el('rect',{x:L,y:T0,width:W-L-R,height:H-T0-B,fill:'none',stroke:'#999'}));
  var ly=T0+14;series.forEach(function(s){var pts=[];s.v.forEach(function(v,t){if(v>0)pts.push(X(t).toFixed(1)+','+
    Math.max(T0,Math.min(H-B,Y(v))).toFixed(1));});
    var p=el('polyline',{points:pts.join(' '),fill:'none',stroke:s.col,'stroke-width':s.w||2,'stroke-dasharray':s.dash||'',
      opacity:s.op||1,'class':'series','data-name':s.name});p.dataset.values=JSON.stringify(s.v);if(s.key)p.dataset.key=s.key;
    svg.appendChild(p);});
  var lg=document.getElementById(svg.id+'-legend');lg.innerHTML='';series.forEach(function(s){if(!s.legend)return;
    var sw=document.createElementNS('http://www.w3.org/2000/svg','svg');sw.setAttribute('width','30');sw.setAttribute('height','10');
    sw.appendChild(el('line',{x1:0,x2:30,y1:5,y2:5,stroke:s.col,'stroke-width':s.w||2,'stroke-dasharray':s.dash||'',opacity:s.op||1}));
    var it=document.createElement('span');it.appendChild(sw);it.appendChild(document.createTextNode(' '+s.legend));lg.appendChild(it);});}
var lastGraph=null;
function num(v){return v==='inf'?Infinity:v==='-inf'?-Infinity:v;}  // JSON has no infinity (explore._r)
function rate(v){return v===null||v===undefined?'–':'×'+fmt(v);}
function hl(v){v=num(v);return v===null||v===undefined?'–':v===Infinity?'∞':fmt(v)+' steps';}
function off(e){return e===null||e===undefined?'':' ('+Math.round(100*e)+'% from the measured half-life)';}
function update(){var o=cur(),c=o.cell,r=D.runs[key(c,o)],T=A.T[o.T],g=c==='lstm'?'f':'z',ln=r.lane_chain;
  names.forEach(function(k){document.getElementById('v-'+k).textContent=lab(k,A[k][o[k]]);});
  var rr=D.runs[key('rnn',o)];if(A.sigma[o.sigma]===null&&rr.sigma_max!==null)
    document.getElementById('v-sigma').textContent='as initialised ('+(A.train[o.train]?'after training: ':'')+fmt(rr.sigma_max)+')';
  var s=[];['rnn','lstm','gru'].forEach(function(k){if(k===c)return;var q=D.runs[key(k,o)];
    s.push({v:q.h,col:COL[k],w:1.2,op:0.45,name:'h-'+k,key:key(k,o),legend:NAME[k]+' ‖∂L/∂h_t‖ (same sliders)'});});
  s.push({v:r.h,col:COL[c],w:3,name:'h',key:key(c,o),legend:NAME[c]+' ‖∂L/∂h_t‖'});
  if(r.c)s.push({v:r.c,col:'#2ca02c',w:2,dash:'6 4',name:'c',key:key(c,o),legend:'LSTM ‖∂L/∂c_t‖ (cell lane)'});
  function geo(end,f,name,lg,col,dash){if(f===null||f===undefined||!(end[end.length-1]>0))return;var e=end[end.length-1];
    s.push({v:end.map(function(_,t){return e*Math.pow(f,end.length-1-t);}),col:col,w:1.5,dash:dash,name:name,legend:lg,noscale:true});}
  geo(r.h,r.rate,'fit','measured ∂L/∂h ×r per step: ‖∂L/∂h_T−1‖·r^(T−1−t)','#ff7f0e','1 3');
  geo(r.h,r.predicted_rate,'pred','predicted (mean-field) ×r per step','#9467bd','8 3');
  if(r.lane_rate!==null)geo(ln==='c'?r.c:r.h,r.lane_rate,'lane',ln+' lane alone ×r per step (from ‖∂L/∂'+ln+'_T−1‖)','#8c564b','2 2');
  if(c==='rnn')geo(r.h,r.pascanu,'bound','Pascanu σ_max(W_hh)·γ per step (a bound, not a prediction)','#555','3 3');
  plot(document.getElementById('plot'),s,{title:'‖∂L/∂h_t‖ (log scale), loss at t = T−1 = '+(T-1),xlabel:'time step t'});
  function ratios(v){var q=[];for(var k=0;k+1<v.length;k++)q.push(v[k+1]>0&&v[k]>0?v[k]/v[k+1]:0);return q;}
  var rt=ratios(r.h),rs=[{v:rt,col:COL[c],w:2,name:'ratio',key:key(c,o),legend:'‖∂L/∂h_k‖ / ‖∂L/∂h_k+1‖'}];
  if(r.c)rs.push({v:ratios(r.c),col:'#2ca02c',w:1.5,dash:'6 4',name:'cratio',key:key(c,o),legend:'‖∂L/∂c_k‖ / ‖∂L/∂c_k+1‖'});
  function flat(f,name,lg,col,dash){if(f!==null&&f!==undefined)rs.push({v:rt.map(function(){return f;}),col:col,w:1.5,dash:dash,name:name,legend:lg});}
  flat(r.rate,'rbar','measured ×r = '+fmt(r.rate),'#ff7f0e','1 3');
  flat(r.predicted_rate,'rpred','predicted (mean-field) ×r = '+fmt(r.predicted_rate),'#9467bd','8 3');
  if(r.lane_rate!==null)flat(r.lane_rate,'rlane',ln+' lane alone ×r = '+fmt(r.lane_rate),'#8c564b','2 2');
  if(c==='rnn')flat(r.pascanu,'bnd','Pascanu σ_max·γ = '+fmt(r.pascanu),'#555','3 3');
  plot(document.getElementById('ratio'),rs,{title:'per-step decay: ratio of the gradient one step back',xlabel:'step k',lin:true,yhi:1.25});
  // the table: [label, text, field of the run it shows (its cell gets id num-<field> and the raw value)]
  var rows=[['measured'],['∂L/∂h ×r per step',rate(r.rate),'rate'],['half-life ln 0.5 / ln r',hl(r.half_life),'half_life']];
  if(ln==='c')rows.push(['∂L/∂c ×r per step',rate(r.lane_measured),'lane_measured']);
  rows.push(['‖∂L/∂h_0‖ (T−1 steps back)',fmt(r.h[0])],['loss',fmt(r.loss),'loss'],
    ['predicted (mean-field, through J̄)'],['∂L/∂h ×r per step',rate(r.predicted_rate)+off(r.predicted_error),'predicted_rate'],
    ['half-life',hl(r.predicted_half_life),'predicted_half_life'],['far from the loss: ρ(J̄)',fmt(r.spectral_radius),'spectral_radius']);
  if(c==='rnn')rows.push(['ρ(W_hh)·mean tanh′',fmt(r.rho_w)+'·'+fmt(r.mean_dphi)+' = '+fmt(r.rho_w_dphi),'rho_w_dphi'],
    ['condition (Pascanu: sufficient, not a prediction)'],
    ['σ_max(W_hh)·γ',fmt(r.pascanu)+' = '+fmt(r.sigma_max)+'·'+fmt(r.gamma)+(r.pascanu<1?' < 1: vanishing guaranteed':' ≥ 1: vanishing not guaranteed'),'pascanu'],
    ['largest step Jacobian ‖∂h_t/∂h_(t-1)‖',fmt(r.max_jacobian)+': '+(r.violations&&r.violations.length?r.violations.length+' step(s) break it':'no step breaks it'),'max_jacobian']);
  if(r.lane_rate!==null)rows.push([ln+' lane alone (per-unit product of '+g+')'],
    ['∂L/∂'+ln+' ×r per step',rate(r.lane_rate)+off(r.lane_error),'lane_rate'],['half-life',hl(r.lane_half_life),'lane_half_life'],
    ['slowest unit’s geometric-mean '+g,fmt(r.dominant_gate),'dominant_gate'],['mean '+g+'̄ (not a predictor)',fmt(r.mean_gate),'mean_gate']);
  var tb=document.getElementById('nums');tb.innerHTML='';rows.forEach(function(x){var tr=tb.insertRow();
    if(x.length===1){tr.className='grp';var h=tr.insertCell();h.colSpan=2;h.textContent=x[0];return;}
    var l=tr.insertCell();l.textContent=x[0];l.className='sub';var td=tr.insertCell();td.textContent=x[1];
    if(x[2]){td.id='num-'+x[2];td.dataset.value=JSON.stringify(r[x[2]]);}});
  var gs=A.train[o.train]===A.train[0]?A.train[0]:A.train[A.train.length-1],gk=[c,knob(c,o),gs].join('|'),svg=D.graphs[gk];
  document.getElementById('gcap').textContent=D.graphs_missing?D.graphs_missing:('drawn at T = '+G.graph_T+', H = '+G.graph_H+
    ', '+(gs?'after '+gs+' training steps':'at init')+' (the plots above: T = '+T+', H = '+A.H[o.H]+')');
  var box=document.querySelector('#graph .pz');
  if(svg&&gk!==lastGraph){lastGraph=gk;window.pzSet(box,URL.createObjectURL(new Blob([svg],{type:'image/svg+xml'})));}
  box.parentNode.style.display=svg?'':'none';
  document.getElementById('train-note').textContent='Trained settings: Adam (lr 0.01, clip 1) on batches of 32 sequences of length '+G.train_T+
    '; every setting measured on '+G.batch_size+' sequences (seed '+G.seed+').';
  window.explorer={key:key(c,o),run:r};}
document.addEventListener('DOMContentLoaded',update);window.addEventListener('resize',update);
})();"""
