"""Parameter initialisers (in place, as torch.nn.init)."""
