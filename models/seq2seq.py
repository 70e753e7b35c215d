"""Sequence-to-sequence models: a Transformer (`Seq2SeqTransformer`) and an RNN encoder-decoder with
Bahdanau (additive) or Luong (general/dot) attention (`RNNSeq2Seq`); teacher forcing, greedy decoding
and beam search (beam 1 = greedy). Token inputs are integer arrays (or Tensors), batch-first (B, T).

p(y | x) = Π_t p(y_t | y_<t, x);  greedy: y_t = argmax p(y_t | y_<t, x);  beam search keeps the K best
prefixes by Σ log p (optionally divided by length^α at the end).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq.nn import Dropout, Embedding, Linear, Module
from tinygrad_seq.tensor import Tensor

from .attention import SoftAttention
from .transformer import PositionalEncoding, TokenEmbedding, Transformer, generate_square_subsequent_mask

__all__ = ["Seq2SeqTransformer", "RNNSeq2Seq", "beam_search"]


def _ids(x) -> np.ndarray:
    a = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"token ids must be (batch, length), got shape {a.shape}")
    return a.astype(np.int64, copy=False)


def _id_tensor(x) -> Tensor:
    """Token ids (B, T) as an int64 Tensor, checked by dtype and shape only (tg.compile replays them)."""
    t = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    if t.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"token ids must be (batch, length), got shape {t.shape}")
    return t if t.dtype == np.int64 else t.to(tg.int64)


def _mask(m) -> np.ndarray | None:
    if m is None:
        return None
    return m.numpy() if isinstance(m, Tensor) else np.asarray(m)


def beam_search(step: Callable, state, batch_size: int, beam_size: int, max_len: int, start_symbol: int,
                end_symbol: int, reorder: Callable, length_penalty: float = 0.0):
    """Generic beam search. `step(y (B·K,), state) -> (log-probs (B·K, V) ndarray, state)`, `reorder(state,
    rows) -> state` gathers beam rows. Beam k of example b is row b·K + k; at the start only beam 0 is live.
    A finished beam (it emitted end_symbol) only extends with end_symbol at no cost. Final score
    Σ log p / len^length_penalty (0 = raw sum). Returns (ids (B, T) ndarray, scores (B,)); with beam 1 the
    ids equal greedy decoding (ties go to the lowest token id in both)."""
    if beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be >= 1, got {beam_size}")
    B, K = batch_size, beam_size
    scores = np.full((B, K), -np.inf)
    scores[:, 0] = 0.0
    finished = np.zeros((B, K), dtype=bool)
    lengths = np.zeros((B, K), dtype=np.int64)
    tokens = np.zeros((B * K, 0), dtype=np.int64)
    y = np.full(B * K, start_symbol, dtype=np.int64)
    for _ in range(max_len):
        logp, state = step(y, state)
        V = logp.shape[-1]
        logp = logp.reshape(B, K, V).astype(np.float64)
        if finished.any():
            only_end = np.full(V, -np.inf)
            only_end[end_symbol] = 0.0
            logp = np.where(finished[..., None], only_end, logp)
        cand = (scores[..., None] + logp).reshape(B, K * V)
        top = np.argsort(-cand, axis=1, kind="stable")[:, :K]
        beam, tok = top // V, top % V
        scores = np.take_along_axis(cand, top, axis=1)
        rows = (np.arange(B)[:, None] * K + beam).ravel()
        tokens = np.concatenate([tokens[rows], tok.reshape(-1, 1)], axis=1)
        prev_fin = np.take_along_axis(finished, beam, axis=1)
        lengths = np.take_along_axis(lengths, beam, axis=1) + ~prev_fin
        finished = prev_fin | (tok == end_symbol)
        state = reorder(state, rows)
        y = tok.ravel()
        if finished.all():
            break
    final = scores / np.maximum(lengths, 1) ** length_penalty if length_penalty else scores
    best = np.argmax(final, axis=1)
    ids = tokens.reshape(B, K, -1)[np.arange(B), best]
    return ids, final[np.arange(B), best]


def _greedy(step: Callable, state, batch_size: int, max_len: int, start_symbol: int, end_symbol: int):
    """y_t = argmax_v log p(v | y_<t); after end_symbol a row keeps emitting end_symbol. Returns (ids, extras)
    with extras the per-step third outputs of `step` (e.g. attention weights) or None."""
    y = np.full(batch_size, start_symbol, dtype=np.int64)
    done = np.zeros(batch_size, dtype=bool)
    ids, extras = [], []
    for _ in range(max_len):
        logp, state, extra = step(y, state)
        y = np.where(done, end_symbol, np.argmax(logp, axis=-1))
        ids.append(y)
        extras.append(extra)
        done |= y == end_symbol
        if done.all():
            break
    ex = None if extras[0] is None else np.stack(extras, 1)
    return np.stack(ids, 1), ex


def _log_softmax(logits: Tensor) -> np.ndarray:
    return logits.log_softmax(-1).numpy()


# ---------------------------------------------------------------- Transformer

class Seq2SeqTransformer(Module):
    """src/tgt token embeddings (· √d) + positional encodings -> Transformer -> generator Linear (logits).
    Arguments follow PyTorch's translation tutorial: (num_encoder_layers, num_decoder_layers, emb_size,
    nhead, src_vocab_size, tgt_vocab_size, dim_feedforward, dropout). Tokens are (B, T) batch-first
    (batch_first=False takes (T, B) and returns (T, B, V) logits)."""

    def __init__(self, num_encoder_layers: int, num_decoder_layers: int, emb_size: int, nhead: int,
                 src_vocab_size: int, tgt_vocab_size: int, dim_feedforward: int = 512, dropout: float = 0.1,
                 batch_first: bool = True, max_len: int = 512, learned_positions: bool = False,
                 activation: str | Callable = "relu", norm_first: bool = False, pad_idx: int | None = None):
        super().__init__()
        self.batch_first, self.emb_size = batch_first, emb_size
        self.transformer = Transformer(d_model=emb_size, nhead=nhead, num_encoder_layers=num_encoder_layers,
                                       num_decoder_layers=num_decoder_layers, dim_feedforward=dim_feedforward,
                                       dropout=dropout, activation=activation, batch_first=True,
                                       norm_first=norm_first)
        self.generator = Linear(emb_size, tgt_vocab_size)
        self.src_tok_emb = TokenEmbedding(src_vocab_size, emb_size, padding_idx=pad_idx)
        self.tgt_tok_emb = TokenEmbedding(tgt_vocab_size, emb_size, padding_idx=pad_idx)
        self.positional_encoding = PositionalEncoding(emb_size, dropout=dropout, max_len=max_len,
                                                      learned=learned_positions, batch_first=True)

    def _bf(self, tokens) -> Tensor:
        a = _id_tensor(tokens)
        return a if self.batch_first else a.T

    def encode(self, src, src_mask=None, src_key_padding_mask=None) -> Tensor:
        """memory = Encoder(PE(E_src[src] √d)), (B, S, d)"""
        x = self.positional_encoding(self.src_tok_emb(self._bf(src)))
        return self.transformer.encoder(x, mask=src_mask, src_key_padding_mask=src_key_padding_mask)

    def decode(self, tgt, memory: Tensor, tgt_mask=None, tgt_key_padding_mask=None,
               memory_key_padding_mask=None, memory_mask=None) -> Tensor:
        """Decoder(PE(E_tgt[tgt] √d), memory), (B, T, d); tgt_mask defaults to the causal mask"""
        t = self._bf(tgt)
        if tgt_mask is None:
            tgt_mask = generate_square_subsequent_mask(t.shape[1], memory.dtype)
        x = self.positional_encoding(self.tgt_tok_emb(t))
        return self.transformer.decoder(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                                        tgt_key_padding_mask=tgt_key_padding_mask,
                                        memory_key_padding_mask=memory_key_padding_mask)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None) -> Tensor:
        """Teacher forcing: logits (B, T, V) of every next token given tgt (the shifted-right target).
        memory_key_padding_mask defaults to src_key_padding_mask."""
        if memory_key_padding_mask is None:
            memory_key_padding_mask = src_key_padding_mask
        memory = self.encode(src, src_mask, src_key_padding_mask)
        out = self.generator(self.decode(tgt, memory, tgt_mask, tgt_key_padding_mask,
                                         memory_key_padding_mask)).named("logits")
        return out if self.batch_first else out.transpose(0, 1)

    # ------------------------------------------------------------ step-by-step decoding
    def decode_step(self, y_prev: np.ndarray, pos: int, memory: Tensor, cache: list | None,
                    memory_key_padding_mask=None, return_attention: bool = False):
        """Log-probabilities (B, V) of the token at position pos+1 given token y_prev at position pos, with the
        decoder's key/value cache (None at pos 0). Returns (log_probs, cache, attention (B, S) | None)."""
        x = self.tgt_tok_emb(np.asarray(y_prev).reshape(-1, 1))
        x = x + self.positional_encoding.table(pos, 1, x.dtype)
        last = self.transformer.decoder.layers[len(self.transformer.decoder.layers) - 1]
        last.store_attention = return_attention
        try:
            h, cache = self.transformer.decoder.step(x, memory, cache, _mask(memory_key_padding_mask))
        finally:
            last.store_attention = False
        attn = last.last_attention[:, 0] if return_attention else None
        return _log_softmax(self.generator(h[:, 0])), cache, attn

    def _full_step(self, src_kpm):
        """step function recomputing the whole prefix each time (no cache): for checking the cache"""
        def step(y, state):
            memory, prefix = state
            prefix = np.concatenate([prefix, y[:, None]], 1)
            h = self.decode(prefix if self.batch_first else prefix.T, memory, memory_key_padding_mask=src_kpm)
            return _log_softmax(self.generator(h[:, -1])), (memory, prefix), None
        return step

    def greedy_decode(self, src, max_len: int, start_symbol: int, end_symbol: int, src_key_padding_mask=None,
                      return_attention: bool = False, use_cache: bool = True):
        """(ids (B, T), attention (B, T, S) of the last decoder layer averaged over heads | None).
        use_cache=False recomputes the full prefix at every step (same ids, O(T²) work, no attention)."""
        kpm = _mask(src_key_padding_mask)
        with tg.no_grad():
            memory = self.encode(src, src_key_padding_mask=kpm)
            B = memory.shape[0]
            if use_cache:
                def step(y, state):
                    pos, cache = state
                    lp, cache, a = self.decode_step(y, pos, memory, cache, kpm, return_attention)
                    return lp, (pos + 1, cache), a
                ids, attn = _greedy(step, (0, None), B, max_len, start_symbol, end_symbol)
            else:
                ids, attn = _greedy(self._full_step(kpm), (memory, np.zeros((B, 0), np.int64)), B, max_len,
                                    start_symbol, end_symbol)
        return (ids if self.batch_first else ids.T), attn

    def beam_search(self, src, beam_size: int, max_len: int, start_symbol: int, end_symbol: int,
                    src_key_padding_mask=None, length_penalty: float = 0.0):
        """Beam search with the key/value cache: (ids (B, T), scores (B,))"""
        kpm = _mask(src_key_padding_mask)
        with tg.no_grad():
            memory = self.encode(src, src_key_padding_mask=kpm)
            B = memory.shape[0]
            rep = np.repeat(np.arange(B), beam_size)
            memory = memory[rep]
            kpm = None if kpm is None else kpm[rep]

            def step(y, state):
                pos, cache = state
                lp, cache, _ = self.decode_step(y, pos, memory, cache, kpm)
                return lp, (pos + 1, cache)

            def reorder(state, rows):
                pos, cache = state
                for c in cache:  # memory keys/values are the same for every beam of an example
                    c["k"], c["v"] = c["k"][rows], c["v"][rows]
                return pos, cache

            ids, scores = beam_search(step, (0, None), B, beam_size, max_len, start_symbol, end_symbol, reorder,
                                      length_penalty)
        return (ids if self.batch_first else ids.T), scores


# ---------------------------------------------------------------- RNN encoder-decoder

_ATTN = {"bahdanau": "additive", "additive": "additive", "luong": "general", "general": "general",
         "luong_general": "general", "dot": "dot", "luong_dot": "dot"}


class RNNSeq2Seq(Module):
    """Encoder: embedding -> GRU/LSTM (optionally bidirectional) over the source, annotations h_1..h_S.
    Decoder (one cell), s_0 = tanh(W_init h_final):
      Bahdanau ("bahdanau"/"additive"): c_t, α_t = attn(s_{t-1}, h) with vᵀ tanh(W_q s + W_k h);
                  s_t = cell([E y_{t-1}; c_t], s_{t-1});  logits = W_out [s_t; c_t; E y_{t-1}]
      Luong ("luong"/"general" or "dot"): s_t = cell([E y_{t-1}; h̃_{t-1}], s_{t-1}) (input feeding);
                  c_t, α_t = attn(s_t, h) with sᵀ W h (or sᵀh);  h̃_t = tanh(W_c [c_t; s_t]);  logits = W_out h̃_t
    forward(src, tgt_in, src_lengths=None, teacher_forcing_ratio=None) -> (logits (B, T, V), attention (B, T, S)).
    Padding: src_lengths, else src == pad_idx, marks the source positions no query may attend to."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, emb_size: int = 32, hidden_size: int = 64,
                 cell: str = "gru", bidirectional: bool = True, num_layers: int = 1, attention: str = "bahdanau",
                 dropout: float = 0.0, pad_idx: int | None = None, teacher_forcing_ratio: float = 1.0):
        super().__init__()
        from . import cells as C, rnn as R  # the recurrent layers (models/rnn.py, models/cells.py)
        if cell not in ("gru", "lstm"):
            raise ValueError(f"RNNSeq2Seq: cell must be 'gru' or 'lstm', got {cell!r}")
        if attention not in _ATTN:
            raise ValueError(f"RNNSeq2Seq: attention must be one of {sorted(_ATTN)}, got {attention!r}")
        dirs = 2 if bidirectional else 1
        key_dim = hidden_size * dirs
        score = _ATTN[attention]
        if score == "dot" and key_dim != hidden_size:
            raise ValueError(f"RNNSeq2Seq: dot attention needs encoder outputs ({key_dim}) of the decoder size "
                             f"({hidden_size}); use bidirectional=False or attention='general'")
        self.cell_type, self.luong = cell, score != "additive"
        self.hidden_size, self.pad_idx, self.teacher_forcing_ratio = hidden_size, pad_idx, teacher_forcing_ratio
        self.src_embedding = Embedding(src_vocab_size, emb_size, padding_idx=pad_idx)
        self.tgt_embedding = Embedding(tgt_vocab_size, emb_size, padding_idx=pad_idx)
        rnn_cls = R.GRU if cell == "gru" else R.LSTM
        self.encoder = rnn_cls(emb_size, hidden_size, num_layers=num_layers, batch_first=True,
                               bidirectional=bidirectional)
        self.bridge = Linear(key_dim, hidden_size)
        if cell == "lstm":
            self.bridge_c = Linear(key_dim, hidden_size)
        self.attention = SoftAttention(score, query_dim=hidden_size, key_dim=key_dim)
        cell_cls = C.GRUCell if cell == "gru" else C.LSTMCell
        feed = hidden_size if self.luong else key_dim
        self.decoder_cell = cell_cls(emb_size + feed, hidden_size)
        if self.luong:
            self.combine = Linear(key_dim + hidden_size, hidden_size, bias=False)
            self.out = Linear(hidden_size, tgt_vocab_size)
        else:
            self.out = Linear(hidden_size + key_dim + emb_size, tgt_vocab_size)
        self.dropout = Dropout(dropout)
        self.num_layers, self.dirs = num_layers, dirs

    # ------------------------------------------------------------ encoder
    def _src_mask(self, src: np.ndarray, src_lengths) -> np.ndarray | None:
        if src_lengths is not None:
            lengths = np.asarray(src_lengths.numpy() if isinstance(src_lengths, Tensor) else src_lengths)
            if lengths.shape != (src.shape[0],):
                raise ValueError(f"RNNSeq2Seq: src_lengths shape {lengths.shape} != (batch,) = ({src.shape[0]},)")
            return np.arange(src.shape[1])[None, :] >= lengths[:, None]
        if self.pad_idx is not None:
            return src == self.pad_idx
        return None

    def encode(self, src, src_lengths=None):
        """-> state dict: annotations h (B, S, dirs·H), their prepared attention keys, mask (B, S) True =
        padding, decoder state s_0 (, c_0)"""
        src = _ids(src)
        mask = self._src_mask(src, src_lengths)
        lengths = None if mask is None else (~mask).sum(1)
        x = self.dropout(self.src_embedding(src))
        out, hn = self.encoder(x, lengths=lengths)
        hn = hn[0] if isinstance(hn, tuple) else hn  # LSTM: (h_n, c_n)
        top = hn[(self.num_layers - 1) * self.dirs:]  # last layer's final state of each direction
        final = top.permute(1, 0, 2).reshape(src.shape[0], -1)  # [h_fwd; h_bwd] (B, dirs·H)
        # the key side of the score (W_k h or W h) is computed once here, not at every decoder step
        state = {"h": out, "keys": self.attention.score.prepare(out), "mask": mask, "s": self.bridge(final).tanh()}
        if self.cell_type == "lstm":
            state["c"] = self.bridge_c(final).tanh()
        if self.luong:
            state["feed"] = tg.zeros(src.shape[0], self.hidden_size, dtype=out.dtype)
        return state

    # ------------------------------------------------------------ decoder
    def _cell(self, inp: Tensor, state: dict) -> None:
        if self.cell_type == "lstm":
            state["s"], state["c"] = self.decoder_cell(inp, (state["s"], state["c"]))
        else:
            state["s"] = self.decoder_cell(inp, state["s"])

    def decode_step(self, y_prev: np.ndarray, state: dict):
        """One decoder step: (logits (B, V), new state, attention weights (B, S))"""
        state = dict(state)
        e = self.dropout(self.tgt_embedding(np.asarray(y_prev)))
        if self.luong:
            self._cell(tg.cat([e, state["feed"]], dim=-1), state)
            ctx, w = self.attention(state["s"], state["h"], mask=state["mask"], prepared=state["keys"])
            state["feed"] = self.combine(tg.cat([ctx, state["s"]], dim=-1)).tanh()
            logits = self.out(self.dropout(state["feed"]))
        else:
            ctx, w = self.attention(state["s"], state["h"], mask=state["mask"], prepared=state["keys"])
            self._cell(tg.cat([e, ctx], dim=-1), state)
            logits = self.out(self.dropout(tg.cat([state["s"], ctx, e], dim=-1)))
        return logits, state, w

    def forward(self, src, tgt_in, src_lengths=None, teacher_forcing_ratio: float | None = None):
        """Each step feeds the true previous token with probability teacher_forcing_ratio (per example, from
        tg.rng()), else the model's own argmax. -> (logits (B, T, V), attention (B, T, S))"""
        tgt = _ids(tgt_in)
        ratio = self.teacher_forcing_ratio if teacher_forcing_ratio is None else teacher_forcing_ratio
        state = self.encode(src, src_lengths)
        logits, weights = [], []
        y = tgt[:, 0]
        for t in range(tgt.shape[1]):
            with tg.time_step(t):
                lo, state, w = self.decode_step(y, state)
            logits.append(lo)
            weights.append(w)
            if t + 1 < tgt.shape[1]:
                y = tgt[:, t + 1]
                if ratio < 1.0:
                    own = lo.numpy().argmax(-1)
                    y = np.where(tg.rng().random(len(y)) < ratio, y, own)
        return tg.stack(logits, dim=1), tg.stack(weights, dim=1)

    def greedy_decode(self, src, max_len: int, start_symbol: int, end_symbol: int, src_lengths=None):
        """(ids (B, T), attention (B, T, S)) for heatmaps"""
        with tg.no_grad():
            state = self.encode(src, src_lengths)

            def step(y, st):
                lo, st, w = self.decode_step(y, st)
                return _log_softmax(lo), st, w.numpy()
            return _greedy(step, state, state["h"].shape[0], max_len, start_symbol, end_symbol)

    def beam_search(self, src, beam_size: int, max_len: int, start_symbol: int, end_symbol: int, src_lengths=None,
                    length_penalty: float = 0.0):
        """(ids (B, T), scores (B,))"""
        with tg.no_grad():
            state = self.encode(src, src_lengths)
            B = state["h"].shape[0]
            state = self._rows(state, np.repeat(np.arange(B), beam_size))

            def step(y, st):
                lo, st, _ = self.decode_step(y, st)
                return _log_softmax(lo), st

            return beam_search(step, state, B, beam_size, max_len, start_symbol, end_symbol, self._rows,
                               length_penalty)

    @staticmethod
    def _rows(state: dict, rows: np.ndarray) -> dict:
        return {k: (None if v is None else v[rows]) for k, v in state.items()}
