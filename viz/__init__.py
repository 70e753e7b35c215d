"""Pictures of computation graphs and gradient flow (installed as `tinygrad_seq.viz`)."""
