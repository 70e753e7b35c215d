"""Sequence models composed from engine ops (installed as `tinygrad_seq.models`)."""
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: F401
from .attention import (AdditiveScore, DotScore, GeneralScore, GlobalAttention, HardAttention,  # noqa: F401,E402
                        LocalAttention, MultiheadAttention, ScaledDotScore, SoftAttention, gumbel_softmax,
                        masked_softmax, scaled_dot_product_attention, set_split_heads)
from .transformer import (PositionalEncoding, TokenEmbedding, Transformer, TransformerDecoder,  # noqa: F401,E402
                          TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
                          generate_square_subsequent_mask)
from .seq2seq import RNNSeq2Seq, Seq2SeqTransformer, beam_search  # noqa: F401,E402
from .cnn import CNNEncoder  # noqa: F401,E402
from .caption import CaptionModel  # noqa: F401,E402
