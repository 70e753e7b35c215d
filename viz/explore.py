"""The interactive explorer behind `tinygrad-seq explore`: a grid of vanishing-gradient measurements
precomputed by the engine, embedded as JSON in one self-contained explore.html (no server, no network).

For every setting of the grid -- cell (rnn/lstm/gru) x hidden size H x the cell's knob (RNN:
sigma_max(W_hh), LSTM: forget-gate bias) x Adam steps trained x sequence length T -- a probe
(experiments.Probe: ŷ = W h_T + b, L = mean (ŷ - y)²) is measured on one batch: ||dL/dh_t|| for every t,
||dL/dc_t|| for the LSTM, and the numbers printed beside them (`setting_numbers`). The page's sliders
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


def setting_numbers(m: E.Measurement) -> dict:
    """The numbers the page prints beside a curve. The one place that picks them: a better theory
    (a predictor of the per-step rate) is switched in here and nowhere else.

    ratio: geometric mean of ||dL/dh_k|| / ||dL/dh_(k+1)|| over the steps (measured);
    half_life: ln 0.5 / ln ratio, the steps for the gradient to halve (measured);
    bound: Pascanu's sigma_max(W_hh)·γ (RNN; below 1 guarantees vanishing, above 1 says nothing);
    gate, gate_half_life: mean forget gate f̄ (LSTM) / carry z̄ (GRU) and ln 0.5 / ln gate."""
    r = m.mean_ratio
    hl = (math.log(0.5) / math.log(r)) if r is not None and 0 < r < 1 else None
    return {"loss": m.loss, "ratio": r, "half_life": hl, "bound": m.bound, "gate": m.mean_gate,
            "gate_half_life": m.half_life if m.half_life is None or math.isfinite(m.half_life) else None}


def _r(v, digits: int = 4):
    """A float rounded to `digits` significant digits (JSON stays small); None/inf/nan -> None."""
    if v is None or not math.isfinite(float(v)):
        return None
    return float(f"{float(v):.{digits}g}")


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
            .replace("{{JS}}", _JS).replace("{{DATA}}", blob))
    if not (out / "index.html").exists():  # explore run on its own: say where the main page comes from
        html = html.replace('<a href="index.html">Back to the main page</a>',
                            f"The main page (index.html) is written by <code>tinygrad-seq vanishing --out {escape(str(out))}</code>")
    path = out / "explore.html"
    path.write_text(html, encoding="utf-8")
    return path


_CSS = """
.panel{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}.controls{min-width:300px;max-width:380px}
.ctl{margin:10px 0}.ctl label{display:block;font-size:14px}.ctl input[type=range]{width:100%}
.ctl .val{font-weight:bold}.plots2{flex:1;min-width:520px}svg.plot{width:100%;display:block;background:#fff;
border:1px solid #ddd}svg.plot text{font-size:12px;fill:#333}#nums td{text-align:right}#nums td:first-child{text-align:left}#nums td+td{white-space:nowrap}.cells label{margin-right:12px}
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
<p class="note" id="defs"></p>
</div>
<div class="plots2">
<svg class="plot" id="plot" data-h="360"></svg><div class="legend" id="plot-legend"></div>
<svg class="plot" id="ratio" data-h="230"></svg><div class="legend" id="ratio-legend"></div>
</div></div>
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
  return (a!==0&&(a<1e-3||a>=1e4))?v.toExponential(1):v.toPrecision(d||3).replace(/\.?0+$/,'');}
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
function update(){var o=cur(),c=o.cell,r=D.runs[key(c,o)],T=A.T[o.T];
  names.forEach(function(k){document.getElementById('v-'+k).textContent=lab(k,A[k][o[k]]);});
  var rr=D.runs[key('rnn',o)];if(A.sigma[o.sigma]===null&&rr.bound!==null)
    document.getElementById('v-sigma').textContent='as initialised ('+(A.train[o.train]?'after training: ':'')+fmt(rr.bound)+')';
  var s=[];['rnn','lstm','gru'].forEach(function(k){if(k===c)return;var q=D.runs[key(k,o)];
    s.push({v:q.h,col:COL[k],w:1.2,op:0.45,name:'h-'+k,key:key(k,o),legend:NAME[k]+' ‖∂L/∂h_t‖ (same sliders)'});});
  s.push({v:r.h,col:COL[c],w:3,name:'h',key:key(c,o),legend:NAME[c]+' ‖∂L/∂h_t‖'});
  if(r.c)s.push({v:r.c,col:'#2ca02c',w:2,dash:'6 4',name:'c',key:key(c,o),legend:'LSTM ‖∂L/∂c_t‖ (cell lane)'});
  var hT=r.h[r.h.length-1];
  function geo(f,name,lg,col,dash){if(f===null||!(hT>0))return;var v=r.h.map(function(_,t){return hT*Math.pow(f,r.h.length-1-t);});
    s.push({v:v,col:col,w:1.2,dash:dash,name:name,legend:lg,noscale:true});}
  if(c==='rnn')geo(r.bound,'bound','Pascanu bound: ‖∂L/∂h_T−1‖·(σ_max·γ)^(T−1−t)','#555','3 3');
  geo(r.ratio,'fit','measured rate: ‖∂L/∂h_T−1‖·r̄^(T−1−t)','#ff7f0e','1 3');
  plot(document.getElementById('plot'),s,{title:'‖∂L/∂h_t‖ (log scale), loss at t = T−1 = '+(T-1),xlabel:'time step t'});
  var rt=[];for(var k=0;k+1<r.h.length;k++)rt.push(r.h[k+1]>0&&r.h[k]>0?r.h[k]/r.h[k+1]:0);
  var rs=[{v:rt,col:COL[c],w:2,name:'ratio',key:key(c,o),legend:'‖∂L/∂h_k‖ / ‖∂L/∂h_k+1‖'}];
  if(r.ratio!==null)rs.push({v:rt.map(function(){return r.ratio;}),col:'#ff7f0e',w:1.2,dash:'1 3',name:'rbar',legend:'r̄ = '+fmt(r.ratio)});
  if(c==='rnn'&&r.bound!==null)rs.push({v:rt.map(function(){return r.bound;}),col:'#555',w:1.2,dash:'3 3',name:'bnd',legend:'bound σ_max·γ = '+fmt(r.bound)});
  plot(document.getElementById('ratio'),rs,{title:'per-step decay: ratio of the gradient one step back',xlabel:'step k',lin:true,yhi:1.25});
  var rows=[['measured per-step decay r̄ (geometric mean)','×'+fmt(r.ratio)],
    ['half-life from r̄: ln 0.5 / ln r̄',r.half_life===null?'–':fmt(r.half_life)+' steps'],
    ['‖∂L/∂h_0‖ (T−1 steps back)',fmt(r.h[0])],['loss',fmt(r.loss)]];
  if(c==='rnn')rows.push(['Pascanu σ_max(W_hh)·γ (sufficient: < 1 ⇒ vanishing)',fmt(r.bound)]);
  if(r.gate!==null)rows.push([(c==='lstm'?'mean forget gate f̄':'mean carry gate z̄'),fmt(r.gate)],
    ['half-life from the mean gate: ln 0.5 / ln '+(c==='lstm'?'f̄':'z̄'),r.gate_half_life===null?'–':fmt(r.gate_half_life)+' steps']);
  var tb=document.getElementById('nums');tb.innerHTML='';rows.forEach(function(x,i){var tr=tb.insertRow();tr.insertCell().textContent=x[0];
    var td=tr.insertCell();td.textContent=x[1];td.id='num-'+i;});
  var gs=A.train[o.train]===A.train[0]?A.train[0]:A.train[A.train.length-1],gk=[c,knob(c,o),gs].join('|'),svg=D.graphs[gk];
  document.getElementById('gcap').textContent=D.graphs_missing?D.graphs_missing:('drawn at T = '+G.graph_T+', H = '+G.graph_H+
    ', '+(gs?'after '+gs+' training steps':'at init')+' (the plots above: T = '+T+', H = '+A.H[o.H]+')');
  var box=document.querySelector('#graph .pz');
  if(svg&&gk!==lastGraph){lastGraph=gk;window.pzSet(box,URL.createObjectURL(new Blob([svg],{type:'image/svg+xml'})));}
  box.parentNode.style.display=svg?'':'none';
  document.getElementById('defs').textContent='Trained settings: Adam (lr 0.01, clip 1) on batches of 32 sequences of length '+G.train_T+
    '; every setting measured on '+G.batch_size+' sequences (seed '+G.seed+').';
  window.explorer={key:key(c,o),run:r};}
document.addEventListener('DOMContentLoaded',update);window.addEventListener('resize',update);
})();"""
