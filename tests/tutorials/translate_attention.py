"""French -> English with a GRU encoder and an attention decoder, in plain PyTorch.

Written for this test suite in the manner of PyTorch's seq2seq translation tutorial: the same data
file (data/eng-fra.txt, `English<TAB>French` per line), the device idiom, nn.Embedding + nn.GRU,
attention weights from a Linear over (embedded, hidden) applied with torch.bmm, encoder outputs
collected by writing each step into a zeros buffer (`outputs[i] = out[0, 0]`, which must carry the
gradient back to the encoder), teacher forcing, optim.SGD, and greedy decoding under torch.no_grad.
Run as written under PyTorch, and under tinygrad_seq with only its import lines rewritten.
"""
import random
import re
import unicodedata

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SOS, EOS = 0, 1
MAX_LEN = 10
n_iters = 400
plot_every = 25
hidden_size = 128
teacher_forcing = 0.5
PREFIXES = ("i am ", "i m ", "he is", "he s ", "she is", "she s", "you are", "you re ",
            "we are", "we re ", "they are", "they re ")


class Vocab:
    def __init__(self):
        self.index = {}
        self.words = {SOS: "SOS", EOS: "EOS"}

    def add(self, sentence):
        for w in sentence.split(' '):
            if w not in self.index:
                self.index[w] = len(self.words)
                self.words[len(self.words)] = w

    def __len__(self):
        return len(self.words)


def normalize(s):
    s = ''.join(c for c in unicodedata.normalize('NFD', s.lower().strip()) if unicodedata.category(c) != 'Mn')
    s = re.sub(r"([.!?])", r" \1", s)
    return re.sub(r"[^a-zA-Z.!?]+", r" ", s)


with open('data/eng-fra.txt', encoding='utf-8') as f:
    raw = [[normalize(s) for s in line.split('\t')][::-1] for line in f.read().strip().split('\n')]
pairs = [p for p in raw if len(p[0].split(' ')) < MAX_LEN and len(p[1].split(' ')) < MAX_LEN
         and p[1].startswith(PREFIXES)]
src_vocab, tgt_vocab = Vocab(), Vocab()
for fr, en in pairs:
    src_vocab.add(fr)
    tgt_vocab.add(en)
print(len(pairs), 'pairs;', len(src_vocab), 'french words,', len(tgt_vocab), 'english words')


def to_ids(vocab, sentence):
    ids = [vocab.index[w] for w in sentence.split(' ')] + [EOS]
    return torch.tensor(ids, dtype=torch.long, device=device).view(-1, 1)


class Encoder(nn.Module):
    def __init__(self, n_words, hidden_size):
        super(Encoder, self).__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(n_words, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size)

    def forward(self, word, h):
        return self.gru(self.embedding(word).view(1, 1, -1), h)

    def init_state(self):
        return torch.zeros(1, 1, self.hidden_size, device=device)


class AttentionDecoder(nn.Module):
    def __init__(self, hidden_size, n_words, dropout_p=0.1, max_len=MAX_LEN):
        super(AttentionDecoder, self).__init__()
        self.embedding = nn.Embedding(n_words, hidden_size)
        self.score = nn.Linear(hidden_size * 2, max_len)
        self.combine = nn.Linear(hidden_size * 2, hidden_size)
        self.dropout = nn.Dropout(dropout_p)
        self.gru = nn.GRU(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, n_words)

    def forward(self, word, h, encoder_outputs):
        e = self.dropout(self.embedding(word).view(1, 1, -1))
        weights = F.softmax(self.score(torch.cat((e[0], h[0]), 1)), dim=1)
        context = torch.bmm(weights.unsqueeze(0), encoder_outputs.unsqueeze(0))
        x = F.relu(self.combine(torch.cat((e[0], context[0]), 1)).unsqueeze(0))
        x, h = self.gru(x, h)
        return F.log_softmax(self.out(x[0]), dim=1), h, weights


def encode(encoder, src):
    h = encoder.init_state()
    outputs = torch.zeros(MAX_LEN, encoder.hidden_size, device=device)
    for i in range(src.size(0)):
        out, h = encoder(src[i], h)
        outputs[i] = out[0, 0]
    return outputs, h


def train_pair(src, tgt, encoder, decoder, opts, criterion):
    for o in opts:
        o.zero_grad()
    encoder_outputs, h = encode(encoder, src)
    word = torch.tensor([[SOS]], device=device)
    loss = 0
    forced = random.random() < teacher_forcing
    for i in range(tgt.size(0)):
        logp, h, _ = decoder(word, h, encoder_outputs)
        loss += criterion(logp, tgt[i])
        if forced:
            word = tgt[i]
        else:
            _, top = logp.topk(1)
            word = top.squeeze().detach()
            if word.item() == EOS:
                break
    loss.backward()
    for o in opts:
        o.step()
    return loss.item() / tgt.size(0)


def translate(encoder, decoder, sentence):
    with torch.no_grad():
        src = to_ids(src_vocab, sentence)
        h = encoder.init_state()
        encoder_outputs = torch.zeros(MAX_LEN, encoder.hidden_size, device=device)
        for i in range(src.size()[0]):
            out, h = encoder(src[i], h)
            encoder_outputs[i] += out[0, 0]
        word = torch.tensor([[SOS]], device=device)
        words, attentions = [], torch.zeros(MAX_LEN, MAX_LEN)
        for step in range(MAX_LEN):
            logp, h, weights = decoder(word, h, encoder_outputs)
            attentions[step] = weights.data
            _, top = logp.data.topk(1)
            if top.item() == EOS:
                words.append('<EOS>')
                break
            words.append(tgt_vocab.words[top.item()])
            word = top.squeeze().detach()
        return words, attentions[:step + 1]


encoder = Encoder(len(src_vocab), hidden_size).to(device)
decoder = AttentionDecoder(hidden_size, len(tgt_vocab)).to(device)
opts = [optim.SGD(encoder.parameters(), lr=0.01), optim.SGD(decoder.parameters(), lr=0.01)]
criterion = nn.NLLLoss()
examples = [[to_ids(src_vocab, fr), to_ids(tgt_vocab, en)] for fr, en in (random.choice(pairs) for _ in range(n_iters))]
losses, running = [], 0
for it in range(1, n_iters + 1):
    running += train_pair(examples[it - 1][0], examples[it - 1][1], encoder, decoder, opts, criterion)
    if it % plot_every == 0:
        losses.append(running / plot_every)
        running = 0
        print(it, '%.4f' % losses[-1])

import matplotlib.pyplot as plt

plt.figure()
plt.plot(losses)
words, attentions = translate(encoder, decoder, "je suis trop froid .")
print(' '.join(words))
plt.matshow(attentions.numpy())
