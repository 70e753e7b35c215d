"""Sequence models composed from engine ops (installed as `tinygrad_seq.models`)."""
