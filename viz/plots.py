"""Gradient-flow plots (matplotlib, imported lazily, Agg backend)."""
def plot_gradient_flow(*a, **k): raise NotImplementedError
