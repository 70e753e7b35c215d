"""Pictures of computation graphs and gradient flow (installed as `tinygrad_seq.viz`).

`draw_graph(loss)` -> graphviz.Digraph of the unrolled graph, coloured by ||dL/dv||;
`render(graph, "out/g.svg")`; `plot_gradient_flow({...})` -> matplotlib figure of ||dL/dh_t|| vs t.
graphviz and matplotlib are imported only when these are called.
"""
from .graph import draw_graph, render  # noqa: F401
from .grads import DEFINITIONS, Theory, capture_grads, find_chains, state_grad_norms  # noqa: F401
from .plots import plot_gradient_flow  # noqa: F401
