"""`draw_graph`: the unrolled computation graph behind a loss, clustered by module and time step,
with long runs of identical steps folded, and every tensor coloured by ||dL/dv||.

Reads only what the engine records on each node (`_ctx`, `.parents`, `.scope` = (module path, time
step), `.name`); traversal is iterative, so 5,000-step graphs draw without recursion.
"""
from __future__ import annotations

import math
import re
import shutil
import textwrap
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..nn import Parameter
from . import style
from .grads import (DEFINITIONS, SLICE_OP, VIEW_OPS, Chain, capture_grads, chain_theory, consumers, edge_grad_norms,
                    find_chains, fmt_hl, fmt_rate, geo_rate, local_grads, norm, op_name, topo_order)

_SeqGraph: Any = None
_LAYER_SCOPE = re.compile(r"^l\d+(_reverse)?$")
_LAYER_SUFFIX = re.compile(r"_l\d+(_reverse)?$")
_HEAD_SCOPE = re.compile(r"^head(\d+)$")  # MultiheadAttention(split_heads=True) runs head i in "head{i}"
INSTALL_HINT = "install Graphviz: sudo apt-get install graphviz (macOS: brew install graphviz)"


def _graph_class():
    """graphviz.Digraph plus `.stats`, `.write(path)` and a Jupyter display that survives a missing `dot`."""
    global _SeqGraph
    if _SeqGraph is None:
        import graphviz

        class SeqGraph(graphviz.Digraph):
            """A graphviz.Digraph; `.stats` holds the measured numbers behind the picture."""
            stats: dict

            def _repr_mimebundle_(self, include=None, exclude=None, **kw):
                try:
                    return super()._repr_mimebundle_(include, exclude, **kw)
                except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as e:
                    note = f"dot not available ({type(e).__name__}); {INSTALL_HINT}. DOT source:\n"
                    return {"text/plain": note + self.source,
                            "text/html": f"<p><i>{escape(note)}</i></p><pre>{escape(self.source)}</pre>"}

            def write(self, path: str | Path, format: str | None = None) -> Path:
                """`render(self, path, format)`: svg/png/pdf by suffix, DOT fallback without `dot`."""
                return render(self, path, format)

            def render(self, filename=None, directory=None, view=False, cleanup=False, format=None, **kw):
                """graphviz's render; without `dot` the DOT source it saved is returned, with one line
                saying how to install Graphviz, instead of raising."""
                try:
                    return super().render(filename, directory=directory, view=view, cleanup=cleanup, format=format, **kw)
                except graphviz.ExecutableNotFound:
                    src = self.save(filename, directory=directory)
                    print(f"dot not found: wrote {src}; {INSTALL_HINT}")
                    return src

        _SeqGraph = SeqGraph
    return _SeqGraph


def render(graph, path: str | Path, format: str | None = None, quiet: bool = False) -> Path:
    """Write `graph` to `path` as svg/png/pdf (format from the suffix if not given); returns the file.

    Without the `dot` program (or if it fails) the DOT source is written to `<path>.dot` instead and
    one line says how to install Graphviz; never raises for a missing `dot`.
    """
    import graphviz

    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "svg").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render: format must be svg, png or pdf, got {fmt!r}")
    out = path if path.suffix.lstrip(".").lower() == fmt else path.with_name(path.name + "." + fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = graph.pipe(format=fmt)
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError) as e:
        dot = out.with_suffix(".dot")
        dot.write_text(graph.source)
        why = "dot not found" if isinstance(e, graphviz.ExecutableNotFound) or shutil.which("dot") is None \
            else f"dot failed ({type(e).__name__})"
        if not quiet:
            print(f"{why}: wrote {dot}; {INSTALL_HINT}")
        return dot
    out.write_bytes(data)
    return out


# ---------------------------------------------------------------------------------------------- labels

def _shape(t) -> str:
    s = t.numpy().shape
    return "scalar" if not s else "×".join(str(d) for d in s)


def _index_repr(ctx) -> str:
    """` [:, 32:64]` for a basic-index GetItem (which gate slice, which time step), else ''."""
    if type(ctx) is not SLICE_OP:
        return ""
    idx = getattr(ctx, "index", None)
    items = idx if isinstance(idx, tuple) else (idx,)
    parts = []
    for it in items:
        if isinstance(it, slice) and it.step is None:
            parts.append(":" if it.start is None and it.stop is None else
                         f"{'' if it.start is None else it.start}:{'' if it.stop is None else it.stop}")
        elif isinstance(it, (int, np.integer)):
            parts.append(str(int(it)))
        elif it is Ellipsis:
            parts.append("…")
        else:
            return ""
    return f" [{', '.join(parts)}]" if parts else ""


def _param_label(p, path: str, names: dict[int, str]) -> str:
    """`lstm.weight_hh_l0`: the model's own name if given, else the consuming module path + attribute."""
    if id(p) in names:
        return names[id(p)]
    parts = [q for q in path.split("/") if q and not _LAYER_SCOPE.match(q)]
    # PyTorch names start below the root module; a bare root module gets its lower-cased class name
    mod = ".".join(parts[1:]) if len(parts) > 1 else (parts[0].lower() if parts else "")
    return f"{mod}.{p.name}" if mod else (p.name or "param")


def _cluster_label(path: str) -> str:
    """`layers.0` for a layer index, `head 0` for an attention head, else the last path part."""
    parts = path.split("/")
    if parts[-1].isdigit() and len(parts) > 1:
        return ".".join(parts[-2:])
    m = _HEAD_SCOPE.match(parts[-1])
    if m:
        return f"head {m.group(1)}"
    if _LAYER_SCOPE.match(parts[-1]):  # a recurrent layer/direction's name scope
        layer = parts[-1][1:].split("_")[0]
        return f"{parts[-1]}: layer {layer}" + (", right to left" if "_reverse" in parts[-1] else "")
    return parts[-1]


def _is_param(t) -> bool:
    return t._ctx is None and t.requires_grad and getattr(t, "name", None) is not None \
        and isinstance(t, Parameter)


def _short_param(name: str) -> str:
    """The formula symbol of a parameter: weight_hh_l0 -> W_hh, bias -> b, in_proj_weight stays."""
    base = _LAYER_SUFFIX.sub("", name.rsplit(".", 1)[-1])
    for long, short in (("weight", "W"), ("bias", "b")):
        if base == long:
            return short
        if base.startswith(long + "_"):
            return short + base[len(long):]
    return base


def _html_label(main: str, small: str = "", bold: bool = False, extra: tuple[str, ...] = ()) -> str:
    """Graphviz HTML label: the formula name large, op and shape (and any extra lines) smaller."""
    top = f"<B>{escape(main)}</B>" if bold else escape(main)
    lines = [top] + [f'<FONT POINT-SIZE="8">{escape(x)}</FONT>' for x in (small, *extra) if x]
    return "<" + "<BR/>".join(lines) + ">"


def _is_transpose(t) -> bool:
    inv = getattr(t._ctx, "inv", None)
    n = len(inv or ())
    return n >= 2 and tuple(inv) == tuple(range(n - 2)) + (n - 1, n - 2)


# expression labels for unnamed ops whose inputs have formula names: "f_t * c_{t-1}", "tanh(c_t)"
_INFIX = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}
_FUNC = {"Sigmoid": "σ", "Tanh": "tanh", "Relu": "relu", "Gelu": "gelu", "Exp": "exp", "Log": "log",
         "Softmax": "softmax", "LogSoftmax": "log_softmax", "MaskedSoftmax": "softmax", "Mean": "mean",
         "Sum": "sum", "Sqrt": "sqrt", "LayerNorm": "LayerNorm", "Dropout": "dropout"}
_MAX_EXPR = 30


# ---------------------------------------------------------------------------------------------- builder

class _Builder:
    def __init__(self, root, fold: bool, keep_steps: int, show_grads: bool, names: dict[int, str],
                 strip: bool, legend: bool, max_strip_cells: int, title: str | None,
                 depth: int | None = None, expand: tuple[str, ...] = (), model=None):
        if keep_steps < 0:
            raise ValueError(f"draw_graph: keep_steps must be >= 0, got {keep_steps}")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
            raise ValueError(f"draw_graph: depth must be None or an int >= 1, got {depth!r}")
        self.depth, self.expand_req, self.model = depth, tuple(expand), model
        self._levels: dict[str, list] = {}
        self.root = root
        self.order = topo_order(root, "draw_graph")
        self.grads = capture_grads(root, "draw_graph") if show_grads else {}
        self.show_grads = show_grads
        self.cons = consumers(self.order)
        self.names = names
        self.fold, self.keep = fold, keep_steps
        self.strip, self.legend, self.max_cells, self.title = strip, legend, max_strip_cells, title
        self._norms: dict[int, float | None] = {}

    def gnorm(self, t) -> float | None:
        k = id(t)
        if k not in self._norms:
            self._norms[k] = norm(self.grads.get(k))
        return self._norms[k]

    # ----------------------------------------------------------------- placement
    def place(self) -> None:
        """Cluster key (module path, time step) for every drawn tensor; hides scalar constants.

        Parameters (and views of them such as W.T) get no single place: one copy is drawn in every
        cluster that uses them (see `disp`), which keeps each time step self-contained on the page
        and makes the edge width show that step's contribution to dL/dW.
        """
        self.cluster: dict[int, tuple[str, Any]] = {}
        self.alias: dict[int, Any] = {}  # id(param or view of param) -> the parameter
        # id(unnamed view: a gate's slice of a_t, x_t = row t, a transpose) -> its input: drawn as the edge
        # input -> consumer, since the formula has no such step
        self.skip: dict[int, Any] = {}
        for t in self.order:
            ctx = t._ctx
            if ctx is not None:
                ps = ctx.parents
                if type(ctx) in VIEW_OPS and len(ps) == 1 and id(ps[0]) in self.alias:
                    self.alias[id(t)] = self.alias[id(ps[0])]
                    continue
                if type(ctx) in VIEW_OPS and len(ps) == 1 and t.name is None and t is not self.root:
                    self.skip[id(t)] = ps[0]
                    continue
                self.cluster[id(t)] = tuple(getattr(ctx, "scope", ("", None)))
                continue
            if _is_param(t):
                self.alias[id(t)] = t
                continue
            users = self.cons.get(id(t), [])
            if not users:  # the root itself is a leaf
                self.cluster[id(t)] = ("", None)
                continue
            if not t.requires_grad and t.numpy().size <= 1 and t.name is None:
                continue  # a Python number turned constant: part of its op, not worth a node
            keys = {tuple(getattr(u._ctx, "scope", ("", None))) for u in users}
            first = tuple(getattr(users[0]._ctx, "scope", ("", None)))
            self.cluster[id(t)] = first if len(keys) == 1 else (first[0], None)
        paths = {k[0] for k in self.cluster.values()}
        tops = {p.split("/")[0] for p in paths if p}
        # the root module (a Probe, the model itself) is the whole picture: its name is the title, not a cluster
        self.root_part = next(iter(tops)) if len(tops) == 1 else None
        self.box_paths()

    # ----------------------------------------------------------------- collapsing modules (depth / expand)
    def levels(self, path: str) -> list[tuple[str, str, str | None]]:
        """[(dotted module name as in model.named_modules(), scope path prefix, class name or None)] from
        the outermost module down, one per scope part below the root ("transformer.encoder" = 1,
        "transformer.encoder.layers.0" = 2, ...; a name scope such as "head0" or "l0" is a level too)."""
        if path in self._levels:
            return self._levels[path]
        parts = path.split("/") if path else []
        start = 1 if parts and parts[0] == self.root_part else 0
        mod = self.model if start and self.model is not None and \
            getattr(self.model, "_scope_name", None) == parts[0] else None
        base, out = "", []
        for i in range(start, len(parts)):
            found = None
            if mod is not None:  # the module called under this scope name: may sit below uncalled containers
                hits = [(n, m) for n, m in mod.named_modules() if n and getattr(m, "_scope_name", None) == parts[i]]
                found = min(hits, key=lambda h: h[0].count(".")) if hits else None
            if found is not None:
                base, mod = (f"{base}.{found[0]}" if base else found[0]), found[1]
                out.append((base, "/".join(parts[:i + 1]), type(mod).__name__))
            else:
                base, mod = (f"{base}.{parts[i]}" if base else parts[i]), None
                out.append((base, "/".join(parts[:i + 1]), None))
        self._levels[path] = out
        return out

    def box_paths(self) -> None:
        """With `depth`, every tensor inside a module at level >= depth goes into that module's one box
        (modules on the way to an `expand`ed one open one level; an expanded module is drawn op by op)."""
        self.boxed: dict[int, str] = {}   # id(tensor) -> scope path of the module box that stands for it
        names = {d for p in {k[0] for k in self.cluster.values()} for d, _, _ in self.levels(p)}
        self.expanded: set[str] = set()
        for e in self.expand_req:
            hit = {d for d in names if d == e or d.endswith("." + e)}
            if not hit:
                some = sorted(names, key=lambda d: (d.count('.'), d))
                more = f", ... ({len(some) - 12} more)" if len(some) > 12 else ""
                raise ValueError(f"draw_graph: expand={e!r} names no module of this graph; modules: "
                                 f"{', '.join(some[:12])}{more}")
            self.expanded |= hit
        if self.depth is None:
            return
        memo: dict[str, str | None] = {}
        for t in self.order:
            key = self.cluster.get(id(t))
            if key is None or not key[0]:
                continue
            if key[0] not in memo:
                memo[key[0]] = self.box_of(key[0])
            box = memo[key[0]]
            if box is None:
                continue
            if t._ctx is None and t.name is not None:  # a named input (x, h_0) stays visible, next to its box
                self.cluster[id(t)] = (box.rsplit("/", 1)[0] if "/" in box else "", None)
                continue
            self.boxed[id(t)] = box
            del self.cluster[id(t)]

    def box_of(self, path: str) -> str | None:
        for lv, (dotted, prefix, _) in enumerate(self.levels(path), 1):
            if dotted in self.expanded:
                return None
            if lv >= self.depth and not any(e.startswith(dotted + ".") for e in self.expanded):
                return prefix
        return None

    # ----------------------------------------------------------------- folding
    def fold_steps(self) -> None:
        """Fold runs of structurally identical steps (same ops and shapes) in each module path."""
        sig: dict[tuple, list] = {}
        first_seen: dict[str, list] = {}
        for t in self.order:
            key = self.cluster.get(id(t))
            if key is None or key[1] is None:
                continue
            if key not in sig:
                sig[key] = []
                first_seen.setdefault(key[0], []).append(key[1])
            if t._ctx is not None:
                sig[key].append((op_name(t._ctx), t.numpy().shape, t.name))
        self.steps = first_seen
        self.folded: dict[tuple, str] = {}   # (path, step) -> fold node id
        self.folds: list[dict] = []
        if not self.fold:
            return
        for path, steps in first_seen.items():
            sigs = [tuple(sorted(sig[(path, s)], key=repr)) for s in steps]
            i = 0
            while i < len(steps):
                j = i
                while j + 1 < len(steps) and sigs[j + 1] == sigs[i]:
                    j += 1
                run = steps[i:j + 1]
                # keep_steps counts from the ends of the sequence (a distinct first step, e.g. h_0 = 0,
                # counts as kept), but a run always keeps one step of context on each side
                head = max(self.keep - i, min(self.keep, 1))
                tail = max(self.keep - (len(steps) - 1 - j), min(self.keep, 1))
                if len(run) - head - tail >= 2:
                    mid = run[head:len(run) - tail]
                    fid = f"fold{len(self.folds)}"
                    for s in mid:
                        self.folded[(path, s)] = fid
                    self.folds.append({"id": fid, "path": path, "steps": mid, "n": len(mid)})
                i = j + 1

    def disp(self, t, user=None) -> str | None:
        """Node id that stands for tensor `t` (as seen from consumer `user`): its own node, the fold
        node of its step, a per-cluster parameter copy, or None (not drawn)."""
        k = id(t)
        while k in self.skip:
            t = self.skip[k]
            k = id(t)
        box = self.boxed.get(k)
        if box is not None:
            return self.box_id[box]
        p = self.alias.get(k)
        if p is not None:
            if user is None:
                return None
            ukey = self.cluster.get(id(user))
            if ukey is None or ukey in self.folded:
                return None  # inside a module box or a folded run the parameter is part of it
            cid = f"{self.nid[id(p)]}@{len(self.copies)}"
            cid = self.copies.setdefault((id(p), ukey), (cid, p))[0]
            return cid
        key = self.cluster.get(k)
        if key is None:
            return None
        f = self.folded.get(key)
        return f if f is not None else self.nid[k]

    # ----------------------------------------------------------------- drawing
    def build(self):
        Digraph = _graph_class()
        self.place()
        self.fold_steps()
        self.chains: list[Chain] = find_chains(self.order, self.grads if self.show_grads else None, self.cons)
        state_ids = {id(s): ch for ch in self.chains for s in ch.states}
        self.nid = {id(t): f"n{i}" for i, t in enumerate(self.order)}
        self.state_ids = state_ids
        self.box_stats: dict[str, dict] = {}
        self.residual_stats: list[dict] = []
        self.box_id = {p: f"box{i}" for i, p in enumerate(dict.fromkeys(self.boxed.values()))}
        self._expr: dict[tuple[int, bool], str | None] = {}

        g = Digraph("computation_graph")
        g.attr(rankdir="TB", fontname="Helvetica", nodesep="0.22", ranksep="0.32", newrank="true",
               bgcolor="white", labelloc="t", fontsize="16", label=self.title or "")
        g.attr("node", fontname="Helvetica", fontsize="10", height="0.3", margin="0.08,0.03")
        g.attr("edge", color=style.EDGE, arrowsize="0.5", fontname="Helvetica", fontsize="9")

        # cluster bodies: key (path, step) -> list of node statements (emitted into subgraphs at the end)
        bodies: dict[tuple, list] = {}
        n_nodes = 0
        for t in self.order:
            key = self.cluster.get(id(t))
            if key is None or key in self.folded:
                continue
            attrs = self.node_attrs(t, key, state_ids.get(id(t)))
            bodies.setdefault(key, []).append((self.nid[id(t)], attrs))
            n_nodes += 1
        for f in self.folds:
            bodies.setdefault((f["path"], None), []).append((f["id"], self.fold_attrs(f)))
            n_nodes += 1
        self.copies: dict[tuple, tuple[str, Any]] = {}
        self.edge_style = self.chain_edge_styles()
        edges = self.collect_edges()
        for path, bid in self.box_id.items():
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            bodies.setdefault((parent, None), []).append((bid, self.box_attrs(path)))
            n_nodes += 1
        for (pid, key), (cid, prm) in self.copies.items():
            bodies.setdefault(key, []).append((cid, self.param_attrs(prm, key)))
            n_nodes += 1

        self.emit_clusters(g, bodies)
        in_step = {nid for (p, step), items in bodies.items() for nid, _ in items if step is not None}
        in_step.update(f["id"] for f in self.folds)
        last = {p: steps[-1] for p, steps in self.steps.items()}
        early = {nid for (p, step), items in bodies.items() for nid, _ in items
                 if step is not None and step != last.get(p)} | {f["id"] for f in self.folds}
        for (src, dst), fl in edges.items():
            attrs = {"penwidth": str(style.edge_width(fl)),
                     "tooltip": f"gradient flowing back: {style.fmt(fl)}" if fl is not None else "no gradient"}
            if dst in in_step and src not in in_step:
                # inputs shared by all steps (x projected once, W) must not stretch every step's
                # cluster up to their rank: steps then stack by the recurrence alone
                attrs.update(constraint="false", color=style.SHARED_EDGE,
                             penwidth=str(round(0.5 + (style.edge_width(fl) - 0.5) / 2, 2)))
            elif src in early and dst not in in_step:
                # every step's output collected after the loop (stack of h_t): the last step alone
                # places the collector, so earlier steps are not pulled sideways into a staircase
                attrs["constraint"] = "false"
            attrs.update(self.edge_style.get((src, dst), {}))
            g.edge(src, dst, **attrs)
        n_edges = len(edges)
        extra = self.emit_strip_and_legend(g)
        g.stats = {
            "nodes": n_nodes + extra, "graph_nodes": n_nodes, "edges": n_edges, "tensors": len(self.order),
            "folds": [{k: v for k, v in f.items() if k != "id"} | {"per_step": f.get("per_step")} for f in self.folds],
            "chains": [self.chain_stats(ch) for ch in self.chains],
            "boxes": self.box_stats, "residuals": self.residual_stats,
        }
        return g

    def node_attrs(self, t, key, chain: Chain | None) -> dict:
        nrm = self.gnorm(t) if self.show_grads else None
        fill = style.grad_color(nrm) if (self.show_grads and t.requires_grad) else (
            style.NO_GRAD if self.show_grads else "#eef1f5")
        shape = _shape(t)
        where = f"{key[0] or '<root>'}" + (f", t={key[1]}" if key[1] is not None else "")
        tip = f"{shape} @ {where}" + (f"; ‖∂L/∂v‖ = {style.fmt(nrm)}" if nrm is not None else "")
        a = {"style": "filled", "fillcolor": fill, "fontcolor": style.font_color(fill), "tooltip": tip}
        ctx = t._ctx
        if ctx is None:
            main = t.name or ("leaf" if t.requires_grad else "input")
            label = _html_label(main, shape, bold=t.name is not None)
            a.update(shape="ellipse", color="#777777")
        else:
            op = op_name(ctx)
            small = f"{op}{_index_repr(ctx)} · {shape}"
            if chain is not None:
                main = f"{t.name}_t  (t={key[1]})"
                f = self.op_expr(t)
                extra = ((f"= {f}",) if f and len(f) <= 2 * _MAX_EXPR else ()) + \
                    ((f"‖∂L/∂{t.name}‖ {style.fmt(nrm)}",) if nrm is not None else ())
                label = _html_label(main, small, True, extra)
                lane = chain.kind in ("lstm-cell", "gru-carry")
                a.update(shape="ellipse", penwidth="2.2", color=style.LANE_EDGE if lane else style.STATE_EDGE)
            else:
                e = self.expr(t) or self.preactivation(t)
                main = e if e is not None else f"{op}{_index_repr(ctx)}"
                label = _html_label(main, small if e is not None else shape, bold=t.name is not None)
                a.update(shape="box", style="filled,rounded", color="#8a8a8a", fontsize="10" if t.name else "9")
            if t is self.root:
                main = f"L = {self.expr(t) or op}"
                label = _html_label(main, small, True)
                a.update(penwidth="2.5", color="#000000", fontsize="11")
        a["label"] = label
        a["tooltip"] = f"{main}: {tip}"
        return a

    # ----------------------------------------------------------------- formula labels
    def preactivation(self, t) -> str | None:
        """"a_r" for the sum whose only use is r_t = σ(a_r) (a named activation of it), else None."""
        users = self.cons.get(id(t), ())
        if len(users) == 1 and users[0].name and users[0].name.endswith("_t") and \
                op_name(users[0]._ctx) in ("Sigmoid", "Tanh", "Relu"):
            return f"a_{users[0].name[:-2]}"
        return None

    def expr(self, t, user=None, depth: int = 0) -> str | None:
        """The formula a node computes, from the names of its inputs: a name itself ("f_t"), a state
        seen from the next step ("c_{t-1}"), a parameter's symbol ("W_hhᵀ"), a constant ("1"), or one op
        over those ("f_t * c_{t-1}", "tanh(c_t)"); None when it would be long or unknown."""
        ustep = getattr(user._ctx, "scope", ("", None))[1] if user is not None and user._ctx is not None else None
        prev = ustep is not None and id(t) in self.state_ids and ustep != getattr(t._ctx, "scope", ("", None))[1]
        k = (id(t), prev)
        if k in self._expr:
            return self._expr[k]
        self._expr[k] = None  # guards a cycle through a repeated sub-expression
        out = self._expr_uncached(t, user, depth, prev)
        self._expr[k] = out if out is None or len(out) <= _MAX_EXPR else None
        return self._expr[k]

    def _expr_uncached(self, t, user, depth: int, prev: bool) -> str | None:
        ctx = t._ctx
        p = self.alias.get(id(t))
        if p is not None:
            sym = _short_param(self.names.get(id(p)) or p.name or "W")
            return sym + ("ᵀ" if t is not p and ctx is not None and _is_transpose(t) else "")
        if t.name is not None and not isinstance(t, Parameter):
            if id(t) in self.state_ids:
                return f"{t.name}_{{t-1}}" if prev else f"{t.name}_t"
            return t.name
        if ctx is None:
            if not t.requires_grad and t.numpy().size == 1:
                return f"{float(t.numpy().reshape(())):.4g}"
            return None
        if id(t) in self.skip:
            src = self.skip[id(t)]
            e = self.expr(src, user, depth)
            return None if e is None else (e + "ᵀ" if _is_transpose(t) else e)
        return self.op_expr(t, depth)

    def op_expr(self, t, depth: int = 0) -> str | None:
        """The formula of t's op over its inputs' names, ignoring t's own name ("o_t * tanh(c_t)" for h_t)."""
        ctx = t._ctx
        if ctx is None or depth >= 3 or not hasattr(ctx, "parents"):
            return None
        op, ps = op_name(ctx), ctx.parents
        if op in ("CrossEntropy", "NllLoss") and len(ps) == 2:  # the target is a gradient-free input
            a = self.expr(ps[0], t, depth + 1)
            return None if a is None else (f"-log softmax({a})[y]" if op == "CrossEntropy" else f"-{a}[y]")
        args = [self.expr(q, t, depth + 1) for q in ps]
        if any(a is None for a in args):
            return None
        wrap = [f"({a})" if " " in a and not a.endswith(")") else a for a in args]
        if op in _INFIX and len(ps) == 2:
            if op == "Mul" and ps[0] is ps[1]:
                return f"{wrap[0]}²"
            return f"{args[0] if op in ('Add', 'Sub') else wrap[0]} {_INFIX[op]} {wrap[1] if op != 'Add' else args[1]}"
        if op == "Neg" and len(ps) == 1:
            return f"-{wrap[0]}"
        if op in _FUNC and len(ps) == 1:
            return f"{_FUNC[op]}({args[0]})"
        if op == "MatMul" and len(ps) == 2:
            return f"{wrap[0]} {wrap[1]}"
        if op == "Linear" and len(ps) >= 2:
            return f"{wrap[0]} {wrap[1]}ᵀ" + (f" + {args[2]}" if len(ps) > 2 else "")
        if op in ("Stack", "Cat") and len(set(args)) == 1:
            return f"{op.lower()}({args[0]})"
        return None

    # ----------------------------------------------------------------- module boxes
    def members(self, path: str) -> list:
        """Every tensor computed inside the module at scope `path` (views and constants included)."""
        pre = path + "/"
        out = []
        for t in self.order:
            if id(t) in self.alias:
                continue
            ctx = t._ctx
            where = getattr(ctx, "scope", ("", None))[0] if ctx is not None else \
                (self.cluster.get(id(t)) or (self.boxed.get(id(t)) or "",))[0]
            if where == path or where.startswith(pre):
                out.append(t)
        return out

    def box_attrs(self, path: str) -> dict:
        """One box for a collapsed module: its name and class, ‖∂L/∂out‖ arriving at its outputs,
        ‖∂L/∂in‖ it passes back to its inputs (parameters excluded), per attention head ‖∂L/∂α‖, H(α)."""
        inside = self.members(path)
        ids = {id(t) for t in inside}
        outs = [t for t in inside if t is self.root or any(id(c) not in ids for c in self.cons.get(id(t), ()))]
        g_out = _combine(self.gnorm(t) for t in outs) if self.show_grads else None
        g_in = None
        if self.show_grads:
            acc: dict[int, np.ndarray] = {}
            for t in inside:
                ctx = t._ctx
                if ctx is None or not any(id(q) not in ids for q in ctx.parents) or self.grads.get(id(t)) is None:
                    continue
                for q, gq in zip(ctx.parents, local_grads(t, self.grads[id(t)])):
                    if gq is not None and id(q) not in ids and id(q) not in self.alias:
                        acc[id(q)] = acc[id(q)] + gq if id(q) in acc else gq
            g_in = _combine(norm(v) for v in acc.values()) if acc else None
        dotted = self.levels(path)[-1][0]
        up = self.levels(path.rsplit("/", 1)[0]) if "/" in path else []
        parent = up[-1][0] if up else ""
        short = dotted[len(parent) + 1:] if parent and dotted.startswith(parent + ".") else dotted
        attn_paths = {re.sub(r"/head\d+$", "", getattr(t._ctx, "scope", ("", None))[0])
                      for t in inside if t.name == "alpha" and t._ctx is not None}
        heads = self.head_stats(inside) if len(attn_paths) == 1 else []  # per head of one attention only
        lines = [self.levels(path)[-1][2] or ""]
        named = sorted({t.name for t in outs if t.name})
        if named:
            lines[0] += f" → {', '.join(named)}"
        if self.show_grads:
            lines.append(f"‖∂L/∂out‖ {style.fmt(g_out)} → ‖∂L/∂in‖ {style.fmt(g_in)}")
        lines += [f"head {h}: ‖∂L/∂α‖ {style.fmt(gn)} · H(α) {ent:.2f} of {mx:.2f} nats (uniform)"
                  for h, gn, ent, mx in heads]
        self.box_stats[dotted] = {"path": path, "grad_out": g_out, "grad_in": g_in,
                                  "heads": [{"head": h, "grad_alpha": gn, "entropy": e, "max_entropy": m}
                                            for h, gn, e, m in heads]}
        fill = style.grad_color(g_out) if self.show_grads else "#eef1f5"
        return {"label": _html_label(short, lines[0], True, tuple(lines[1:])), "shape": "box",
                "style": "filled,bold", "fillcolor": fill, "fontcolor": style.font_color(fill), "color": "#333333",
                "fontsize": "11", "margin": "0.12,0.06",
                "tooltip": f"module {dotted} drawn as one box (draw_graph depth={self.depth}; "
                           f"expand=[{dotted!r}] opens it): gradient arriving at its outputs "
                           f"{style.fmt(g_out)}, passed back to its inputs {style.fmt(g_in)}"}

    def head_stats(self, tensors: list) -> list[tuple[int, float | None, float, float]]:
        """(head, ‖∂L/∂α_head‖, mean entropy of α's rows, that of uniform attention over the keys each row
        sees) from the tensors named "alpha": one per
        head scope (split_heads) or the head axis of a batched (N, h, L, S) α."""
        acc: dict[int, list] = {}
        for t in tensors:
            if t.name != "alpha" or t._ctx is None:
                continue
            a, g = t.numpy().astype(np.float64), self.grads.get(id(t))
            m = _HEAD_SCOPE.match(getattr(t._ctx, "scope", ("", None))[0].rsplit("/", 1)[-1])
            if m:
                acc.setdefault(int(m.group(1)), []).append((a, g))
            elif a.ndim == 4:
                for h in range(a.shape[1]):
                    acc.setdefault(h, []).append((a[:, h], None if g is None else g[:, h]))
        out = []
        for h, items in sorted(acc.items()):
            ent = [float(np.mean(-(a * np.log(np.where(a > 0, a, 1.0))).sum(-1))) for a, _ in items]
            gn = _combine(norm(g) for _, g in items) if self.show_grads else None
            # uniform attention over the keys a row may see (a causal or padding mask leaves fewer than S)
            mx = [float(np.mean(np.log(np.maximum((a > 0).sum(-1), 1)))) for a, _ in items]
            out.append((h, gn, float(np.mean(ent)), float(np.mean(mx))))
        return out

    def param_attrs(self, p, key) -> dict:
        nrm = self.gnorm(p) if self.show_grads else None
        fill = style.grad_color(nrm) if self.show_grads else "#eef1f5"
        label = _param_label(p, key[0], self.names)
        shown = label
        mods = [d for d, _, cls in self.levels(key[0]) if cls is not None]
        if len(label) > 24 and mods and label.startswith(mods[-1] + "."):
            shown = label[len(mods[-1]) + 1:]  # inside its module's cluster the module path is the cluster's name
        return {"label": f"{shown}\n{_shape(p)}", "shape": "box", "style": "filled", "fillcolor": fill,
                "fontcolor": style.font_color(fill), "color": "#444444", "fontsize": "8", "height": "0.25",
                "tooltip": f"parameter {label} {_shape(p)}; total ‖∂L/∂W‖ = {style.fmt(nrm)} "
                           "(one copy per cluster that uses it; edge width = this cluster's share)"}

    def fold_attrs(self, f: dict) -> dict:
        steps = f["steps"]
        path, lines = f["path"], [f"⋯  ×{f['n']} steps (t={steps[0]}…{steps[-1]})  ⋯"]
        per_step, logs = None, []
        for ch in self.chains:
            if ch.path != path or not ch.norms:
                continue
            idx = [k for k, s in enumerate(ch.steps) if (path, s) in self.folded and self.folded[(path, s)] == f["id"]]
            if not idx:
                continue
            logs += [math.log10(n) for k, n in enumerate(ch.norms) if k in idx and n]
            r = ch.rate  # the chain's ×r per step: the same number as the legend and the table
            if r is not None:
                lines.append(f"∂L/∂{ch.name} {fmt_rate(r)} per step, half-life {fmt_hl(ch.half_life)} steps")
                if per_step is None:
                    per_step = r
        if per_step is None and self.show_grads:  # no named state: follow the largest gradient per step
            rep = self.step_representatives(path, steps)
            if len(rep) >= 2 and rep[0] and rep[-1]:
                per_step = geo_rate(rep[0], rep[-1], len(rep) - 1)
                if per_step is not None:
                    lines.append(f"gradient ×{per_step:.3g} per step")
            logs = [math.log10(x) for x in rep if x]
        f["per_step"] = per_step
        fill = style.grad_color(10 ** float(np.mean(logs))) if logs else "#eef1f5"
        return {"label": "\n".join(lines), "shape": "box", "style": "filled,dashed,bold", "fillcolor": fill,
                "fontcolor": style.font_color(fill), "color": "#555555", "fontsize": "11",
                "tooltip": f"{f['n']} structurally identical steps folded (keep_steps={self.keep})"}

    def step_representatives(self, path: str, steps: list) -> list[float | None]:
        want = set(steps)
        best: dict[Any, float] = {}
        for t in self.order:
            key = self.cluster.get(id(t))
            if key and key[0] == path and key[1] in want and t._ctx is not None:
                n = self.gnorm(t)
                if n is not None and n > best.get(key[1], 0.0):
                    best[key[1]] = n
        return [best.get(s) for s in steps]

    def emit_clusters(self, g, bodies: dict) -> None:
        """Module clusters nested by path (attention heads "head{i}" inside their module, labeled "head i"
        with ‖∂L/∂α‖ and the entropy of α), one "t=k" cluster per kept step inside its module. Neither the
        root module (the title names it) nor a ModuleList ("layers": its children say "layers.0") is a cluster."""
        import graphviz
        paths = {p for p, _ in bodies} - {""}
        for p in list(paths):
            parts = p.split("/")
            paths.update("/".join(parts[:i]) for i in range(1, len(parts)))
        own = {p for p, _ in bodies}
        kids = {p: [q for q in paths if q.startswith(p + "/") and q.count("/") == p.count("/") + 1] for p in paths}
        skipped = {p for p in paths if p == self.root_part or (
            p not in own and all(q.rsplit("/", 1)[-1].isdigit() for q in kids[p]))}

        def parent_of(p: str) -> str:
            while "/" in p:
                p = p.rsplit("/", 1)[0]
                if p not in skipped:
                    return p
            return ""

        subs: dict[str, Any] = {"": g}
        for p in sorted(paths - skipped):
            sg = graphviz.Digraph(name=f"cluster_{p}")
            sg.attr(label=self.cluster_label(p), tooltip=p, style="rounded", color=style.CLUSTER_MODULE,
                    fontsize="12", fontname="Helvetica-Bold", labeljust="l")
            subs[p] = sg
        for (p, step), items in bodies.items():
            home = subs[p] if p in subs else subs[parent_of(p) if p else ""]
            if step is None:
                target = home
            else:
                target = graphviz.Digraph(name=f"cluster_{p}@t={step}")
                target.attr(label=f"t={step}", style="rounded,filled", color="#c9ccd3",
                            fillcolor=style.CLUSTER_STEP_BG, fontsize="10", fontname="Helvetica", labeljust="r")
            for nid, attrs in items:
                target.node(nid, **attrs)
            if step is not None:
                home.subgraph(target)
        for p in sorted(paths - skipped, key=lambda q: (-q.count("/"), q)):  # deepest first (then by name)
            subs[parent_of(p)].subgraph(subs[p])

    def where(self, path: str) -> str:
        """A scope path as the learner knows it: the dotted module name below the root ("lstm.l0")."""
        lv = self.levels(path)
        return lv[-1][0] if lv else path

    def cluster_label(self, path: str) -> str:
        label = _cluster_label(path)
        if _HEAD_SCOPE.match(path.rsplit("/", 1)[-1]) and self.show_grads:
            st = self.head_stats(self.members(path))
            if st:
                _, gn, ent, mx = st[0]
                label += f"  ‖∂L/∂α‖ {style.fmt(gn)}, H(α) {ent:.2f} of {mx:.2f} nats (uniform)"
        lv = self.levels(path)
        cls = lv[-1][2] if lv else None
        if cls is not None:  # a module: its name below the enclosing one ("transformer.encoder", "layers.0")
            up = lv[-2][0] + "." if len(lv) >= 2 and lv[-1][0].startswith(lv[-2][0] + ".") else ""
            label = lv[-1][0][len(up):]
        return f"{label}  ({cls})" if cls else label

    def collect_edges(self) -> dict[tuple[str, str], float | None]:
        """(src, dst) -> ||gradient flowing along the edge|| (max over merged edges)."""
        seen: dict[tuple[str, str], float | None] = {}
        for t in self.order:
            ctx = t._ctx
            if ctx is None or id(t) in self.alias:
                continue
            dst = self.disp(t)
            if dst is None:
                continue
            srcs = [self.disp(p, t) for p in ctx.parents]
            if all(src is None or src == dst for src in srcs):
                continue  # inside one node (a module box, a view drawn as its input's edge)
            folded_dst = dst.startswith("fold")
            flows = edge_grad_norms(t, self.grads.get(id(t))) if (self.show_grads and not folded_dst) \
                else [self.gnorm(p) if self.show_grads else None for p in ctx.parents]
            for p, fl, src in zip(ctx.parents, flows, srcs):
                if src is None or src == dst:
                    continue
                k = (src, dst)
                if k not in seen or (fl is not None and (seen[k] is None or fl > seen[k])):
                    seen[k] = fl
        return seen

    def chain_path(self, a, b) -> list | None:
        """Shortest forward path of tensors a -> ... -> b (BFS over consumers, bounded)."""
        prev = {id(a): None}
        frontier = [a]
        for _ in range(16):
            nf = []
            for t in frontier:
                for c in self.cons.get(id(t), ()):
                    if id(c) in prev:
                        continue
                    prev[id(c)] = t
                    if c is b:
                        path, cur = [b], t
                        while cur is not None:
                            path.append(cur)
                            cur = prev[id(cur)]
                        return path[::-1]
                    nf.append(c)
            frontier = nf
        return None

    def chain_edge_styles(self) -> dict[tuple[str, str], dict]:
        """State edges: the first edge of the path h_k -> h_(k+1) is labeled ∇×ratio; the LSTM cell
        and GRU carry paths are drawn as a thick green lane."""
        styles: dict[tuple[str, str], dict] = {}
        for ch in self.chains:
            lane = ch.kind in ("lstm-cell", "gru-carry")
            colour = style.LANE_EDGE if lane else style.STATE_EDGE
            broken = set(ch.violations)
            for k in range(len(ch.states) - 1):
                path = self.chain_path(ch.states[k], ch.states[k + 1])
                if not path:
                    continue
                for i, (u, v) in enumerate(zip(path, path[1:])):
                    src, dst = self.disp(u, v), self.disp(v)
                    if src is None or dst is None or src == dst:
                        continue
                    st = styles.setdefault((src, dst), {})
                    if lane:
                        st.update(color=colour, penwidth="3.5", arrowsize="0.7")
                    elif i == 0:
                        st.update(color=colour, style="bold")
                    if i == 0 and ch.ratios and ch.ratios[k] is not None and not (
                            src.startswith("fold") or dst.startswith("fold")):
                        lab = f"∇×{ch.ratios[k]:.3g}"
                        if k in broken:  # a step Jacobian above the Pascanu bound: say so on the edge itself
                            lab += f" ‖J‖={ch.jacobian_norms[k]:.3g} > {ch.bound:.3g}!"
                        st.update(label=lab, fontcolor="#b2182b" if k in broken else colour)
                    if not lane:
                        break
        return styles

    def emit_strip_and_legend(self, g) -> int:
        """The per-step strip of ||dL/dh_t|| cells and the legend, under the graph (invisible edges)."""
        anchor, n = self.disp(self.root) or self.nid[id(self.root)], 0
        if self.strip and self.show_grads and any(ch.norms for ch in self.chains):
            rows = [(f"{self.where(ch.path)} ‖∂L/∂{ch.name}_t‖", self.strip_cells(ch))
                    for ch in self.chains if ch.norms]
            g.node("strip", label=style.strip_html(rows), shape="plaintext", margin="0")
            g.edge(anchor, "strip", style="invis")
            anchor, n = "strip", n + 1
        res = self.residual_rows() if self.strip and self.show_grads else []
        if res:
            g.node("residuals", label=style.strip_html(res), shape="plaintext", margin="0")
            g.edge(anchor, "residuals", style="invis")
            anchor, n = "residuals", n + 1
        if self.legend:
            g.node("legend", label=style.legend_html(self.legend_lines()), shape="plaintext", margin="0")
            g.edge(anchor, "legend", style="invis")
            n += 1
        return n

    def residual_rows(self) -> list[tuple[str, list[tuple[str, float | None]]]]:
        """At each residual point y = x + F(x) (tensors named "residual", forward order): ‖∂L/∂x‖ at the
        sublayer input, the part the identity path carries (= ‖∂L/∂y‖) and the part F passes back,
        ‖(∂F/∂x)ᵀ ∂L/∂y‖ (the sum of x's other consumers' local gradients: exact)."""
        cells_in, cells_skip, cells_f = [], [], []
        rank = {n: i for i, (n, _) in enumerate(self.model.named_modules())} if self.model is not None else {}
        found = [(k, r) for k, r in enumerate(self.order)
                 if r.name == "residual" and r._ctx is not None and len(r._ctx.parents) == 2]

        def forward_order(item):  # the order modules were registered (encoder before decoder), then the graph's
            lv = self.levels(getattr(item[1]._ctx, "scope", ("", None))[0])
            return (rank.get(lv[-1][0], -1) if lv else -1), item[0]
        for _, r in sorted(found, key=forward_order):
            x, branch = r._ctx.parents
            g = self.grads.get(id(r))
            through = None
            for c in self.cons.get(id(x), ()):
                if c is r or self.grads.get(id(c)) is None:
                    continue
                gx = local_grads(c, self.grads[id(c)])[[id(q) for q in c._ctx.parents].index(id(x))]
                if gx is not None:
                    through = gx if through is None else through + gx
            where = getattr(r._ctx, "scope", ("", None))[0]
            lv = self.levels(where)
            layer = lv[-1][0] if lv else ""
            m = re.search(r"(encoder|decoder)\.layers\.(\d+)$", layer)
            bpath = getattr(branch._ctx, "scope", ("", None))[0] if branch._ctx is not None else ""
            kind = "cross-attn" if "multihead_attn" in bpath else "self-attn" if "attn" in bpath else "ffn"
            head = f"{m.group(1)[:3]}{m.group(2)} {kind}" if m else f"{layer.rsplit('.', 1)[-1]} {kind}".strip()
            vals = (self.gnorm(x), norm(g), norm(through))
            self.residual_stats.append({"layer": layer, "sublayer": kind, "grad_x": vals[0], "skip": vals[1],
                                        "through_sublayer": vals[2]})
            for cells, v in zip((cells_in, cells_skip, cells_f), vals):
                cells.append((head, v))
        if not cells_in:
            return []
        return [("‖∂L/∂x‖ at the sublayer input x", cells_in),
                ("via the residual (identity) path: ‖∂L/∂y‖", cells_skip),
                ("via the sublayer: ‖(∂F/∂x)ᵀ ∂L/∂y‖", cells_f)]

    def strip_cells(self, ch: Chain) -> list[tuple[str, float | None]]:
        T = len(ch.states)
        if T <= self.max_cells:
            return [(f"t={s}", v) for s, v in zip(ch.steps, ch.norms)]
        cells = []
        for idx in np.array_split(np.arange(T), self.max_cells):
            vals = [ch.norms[i] for i in idx if ch.norms[i]]
            v = 10 ** float(np.mean(np.log10(vals))) if vals else None
            cells.append((f"t={ch.steps[idx[0]]}–{ch.steps[idx[-1]]}", v))
        return cells

    def legend_lines(self) -> list[tuple[str, str]]:
        lines = []
        if self.root.numpy().size != 1:
            lines.append(("L = sum of the root tensor (it is not a scalar)", "#444444"))
        if self.folds:
            total = sum(f["n"] for f in self.folds)
            lines.append((f"dashed boxes: {total} structurally identical time steps folded "
                          f"(first and last {self.keep} kept)", "#444444"))
        if any(not ch.kind.startswith(("lstm", "gru")) for ch in self.chains) and self.show_grads:
            lines.append(("- - ∇×r on a state edge: measured ‖∂L/∂h_k‖ / ‖∂L/∂h_(k+1)‖ of that one step",
                          style.STATE_EDGE))
        given = {th.cell: th for th in getattr(self, "theory", ())}
        heads = [ch for ch in self.chains if ch.norms and (ch.name == "h" or not any(
            c.path == ch.path and c.name == "h" and c.norms for c in self.chains))]  # an LSTM's c: in its h's theory
        used: set[str] = set()
        for ch in heads:
            where = escape(f"{self.where(ch.path)} {ch.name}")
            lane = next((c for c in self.chains if c.path == ch.path and c.kind in ("lstm-cell", "gru-carry")), None)
            cell = {"rnn": "rnn", "gru-carry": "gru"}.get(ch.kind, "lstm" if lane is not None else "")
            one = sum(c.kind == ch.kind for c in heads) == 1  # a given Theory describes one layer
            th = (given.get(cell) if one else None) or chain_theory(cell, ch, lane)
            colour = style.LANE_EDGE if lane is not None else "#222222"
            for i, text in enumerate(th.legend_lines()):
                bad = text.startswith("condition") and th.violations
                lines.append(((f"{where}: " if i == 0 else "    ") + escape(text), "#b2182b" if bad else colour))
            used.update(k for k, v in (("rate", 1), ("mean_field", th.predicted_rate), ("pascanu", th.pascanu),
                                       ("lane", th.lane_rate)) if v is not None)
        for key in ("rate", "mean_field", "pascanu", "lane"):
            if key in used:
                lines += [(("" if i == 0 else "    ") + escape(part), "#555555")
                          for i, part in enumerate(textwrap.wrap(DEFINITIONS[key], 110))]
        return lines

    def chain_stats(self, ch: Chain) -> dict:
        return {"path": ch.path, "name": ch.name, "kind": ch.kind, "steps": list(ch.steps), "norms": ch.norms,
                "ratios": ch.ratios, "mean_ratio": ch.mean_ratio, "sigma_max": ch.sigma_max, "gamma": ch.gamma,
                "bound": ch.bound, "violations": [ch.steps[k + 1] for k in ch.violations],
                "jacobian_norms": ch.jacobian_norms if ch.kind == "rnn" else [],
                "gates": ch.gates, "mean_gate": ch.mean_gate, "half_life": ch.half_life,
                "dominant_gate": ch.dominant_gate, "lane_rate": ch.lane_rate}


def _combine(norms) -> float | None:
    """‖(a, b, ...)‖ from the parts' norms (None parts skipped; None if there are none)."""
    vals = [n for n in norms if n is not None]
    return float(math.sqrt(sum(n * n for n in vals))) if vals else None


def draw_graph(root, *, fold: bool = True, keep_steps: int = 3, show_grads: bool = True, model=None,
               params: dict | None = None, strip: bool = True, legend: bool = True, max_strip_cells: int = 24,
               title: str | None = None, theory=None, depth: int | None = None, expand=()):
    """The computation graph behind `root` (a loss) as a `graphviz.Digraph`.

    - op nodes (rounded boxes: op and output shape), tensor nodes (ellipses: inputs, named states
      h/c; boxes: parameters, labeled `lstm.weight_hh_l0` from `model`/`params` or the module path);
    - clusters per module (attention heads too, "head 0", when MultiheadAttention runs with
      split_heads=True) and, inside, per time step ("t=17"); with `fold`, runs of structurally
      identical steps keep their first and last `keep_steps` and become one summary node
      ("×94 steps", "∂L/∂h ×0.71 per step, half-life 2 steps": the chain's ×r, as in the legend);
    - with `show_grads`: fill = log10 ||dL/dv|| on the shared scale (style.py), edge width = the
      gradient flowing along the edge, state edges h_k → h_{k+1} labeled ||dL/dh_k|| / ||dL/dh_{k+1}||,
      the LSTM cell / GRU carry lane, a strip of per-step ||dL/dh_t|| under the graph, and a legend with
      the measured ×r per step and half-life, the Pascanu condition σ_max(W_hh)·γ and the predictors
      (definitions: grads.DEFINITIONS); `theory` = a `Theory` per cell (experiments.theory) adds the
      mean-field prediction for LSTM/GRU, which needs the cell's step Jacobians.
    - labels: a tensor's formula name (`.named("f_t")`, "alpha", "residual") large, the op and shape
      smaller; an unnamed op over named inputs shows its formula ("f_t * c_{t-1}"); unnamed views
      (a gate's slice, x_t's row, a transpose) are edges, not nodes; the root module is no cluster;
    - `depth=N` draws every module at level N (encoder = 1, encoder.layers.0 = 2, ...; a ModuleList
      index counts with its list) as one box with ‖∂L/∂out‖ → ‖∂L/∂in‖ (and, for attention, per head
      ‖∂L/∂α‖ and the entropy H(α)); `expand=["encoder.layers.0.self_attn"]` (a dotted name or its tail)
      draws those modules op by op. `depth=None` (default) draws every op. Tensors named "residual"
      get a strip of ‖∂L/∂x‖ via the identity path vs via the sublayer at each residual point.
    Gradients come from a capture-mode backward with retain_graph=True: `.grad` is untouched and
    `root.backward()` still works afterwards. `.stats` on the result holds the measured numbers.
    """
    if not hasattr(root, "_ctx") or not hasattr(root, "data"):
        raise TypeError(f"draw_graph: root must be a tinygrad_seq Tensor, got {type(root).__name__}")
    from tinygrad_seq.compile import check_drawable  # a compiled call has one node for its whole program
    check_drawable(root)
    if model is not None and params is None:
        params = dict(model.named_parameters())
    names = {id(p): n for n, p in (params or {}).items()}
    if isinstance(expand, str):
        expand = [expand]
    b = _Builder(root, fold, keep_steps, show_grads, names, strip, legend, max_strip_cells, title,
                 depth, tuple(expand), model)
    b.theory = [] if theory is None else list(theory) if isinstance(theory, (list, tuple)) else [theory]
    return b.build()
