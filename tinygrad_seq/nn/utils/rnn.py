"""Sequence utilities, as torch.nn.utils.rnn (pad_sequence). Packed sequences are not implemented: pad,
and pass lengths or masks to the models instead."""
from __future__ import annotations

from typing import Sequence

from ...tensor import Tensor, pad, stack


def pad_sequence(sequences: Sequence[Tensor] | Tensor, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shapes (L_i, *) into (L_max, B, *) (or (B, L_max, *) with batch_first), each padded
    with `padding_value` after its end (padding_side='right') or before its start ('left'); differentiable."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    seqs = list(sequences)
    if not seqs:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    for i, s in enumerate(seqs):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequences[{i}] is {type(s).__name__}, not a Tensor")
        if s.ndim == 0 or s.shape[1:] != seqs[0].shape[1:]:
            raise RuntimeError(f"pad_sequence: every sequence must have shape (L, *rest) with the same rest; "
                               f"sequences[0] has shape {seqs[0].shape}, sequences[{i}] has shape {s.shape}")
    n = max(s.shape[0] for s in seqs)
    padded = []
    for s in seqs:
        extra = n - s.shape[0]
        widths = [0, 0] * (s.ndim - 1) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(pad(s, widths, padding_value) if extra else s)
    return stack(padded, 0 if batch_first else 1)
