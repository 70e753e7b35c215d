"""Which language is a surname from? A character-level RNN written in plain PyTorch.

Written for this test suite in the manner of PyTorch's char-RNN classification tutorial: the same
data layout (data/names/<Language>.txt), the same kind of hand-built RNN, and the same torch calls
a beginner makes there (one-hot rows written with t[i][0][j] = 1, topk, .item(), LongTensor targets,
NLLLoss, a manual p.data.add_ update, a confusion matrix filled with +=, torch.no_grad). The test
runs it under real PyTorch as written, and under tinygrad_seq with only its import lines rewritten.
"""
import glob
import os
import random
import string
import time
import unicodedata

import torch
import torch.nn as nn
import torch.nn.functional as F

ALPHABET = string.ascii_letters + " .,;'"
n_iters = 2000
plot_every = 100
n_eval = 300
lr = 0.005


def to_ascii(s):
    kept = []
    for ch in unicodedata.normalize('NFD', s):
        if unicodedata.category(ch) != 'Mn' and ch in ALPHABET:
            kept.append(ch)
    return ''.join(kept)


languages = []
names_by_language = {}
for path in sorted(glob.glob(os.path.join('data', 'names', '*.txt'))):
    language = os.path.splitext(os.path.basename(path))[0]
    with open(path, encoding='utf-8') as f:
        names_by_language[language] = [to_ascii(n) for n in f.read().strip().split('\n')]
    languages.append(language)
print(len(languages), 'languages; Italian:', names_by_language['Italian'][:3])


def one_hot_letter(ch):
    row = torch.zeros(1, len(ALPHABET))
    row[0][ALPHABET.find(ch)] = 1
    return row


def encode(name):
    onehots = torch.zeros(len(name), 1, len(ALPHABET))
    for pos, ch in enumerate(name):
        onehots[pos][0][ALPHABET.find(ch)] = 1
    return onehots


class CharRNN(nn.Module):
    def __init__(self, n_in, n_hidden, n_out):
        super(CharRNN, self).__init__()
        self.n_hidden = n_hidden
        self.in_to_hidden = nn.Linear(n_in, n_hidden)
        self.hidden_to_hidden = nn.Linear(n_hidden, n_hidden)
        self.hidden_to_out = nn.Linear(n_hidden, n_out)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x, h):
        h = F.tanh(self.in_to_hidden(x) + self.hidden_to_hidden(h))
        return self.log_softmax(self.hidden_to_out(h)), h

    def init_state(self):
        return torch.zeros(1, self.n_hidden)


def read_name(model, onehots):
    h = model.init_state()
    for pos in range(onehots.size()[0]):
        out, h = model(onehots[pos], h)
    return out


def guess(out):
    _, top = out.topk(1)
    k = top[0].item()
    return languages[k], k


def sample_example():
    language = languages[random.randint(0, len(languages) - 1)]
    name = random.choice(names_by_language[language])
    target = torch.tensor([languages.index(language)], dtype=torch.long)
    return language, name, target, encode(name)


model = CharRNN(len(ALPHABET), 128, len(languages))
print(one_hot_letter('J'), encode('Jones').size())
print(guess(read_name(model, encode('Albert'))))
loss_fn = nn.NLLLoss()

losses = []
running = 0
t0 = time.time()
for it in range(1, n_iters + 1):
    language, name, target, onehots = sample_example()
    model.zero_grad()
    out = read_name(model, onehots)
    loss = loss_fn(out, target)
    loss.backward()
    for p in model.parameters():
        p.data.add_(p.grad.data, alpha=-lr)
    running += loss.item()
    if it % plot_every == 0:
        losses.append(running / plot_every)
        running = 0
        print('%d %.4f %s -> %s (%.1fs)' % (it, losses[-1], name, guess(out)[0], time.time() - t0))

import matplotlib.pyplot as plt

plt.figure()
plt.plot(losses)

confusion = torch.zeros(len(languages), len(languages))
for _ in range(n_eval):
    language, name, target, onehots = sample_example()
    _, k = guess(read_name(model, onehots))
    confusion[languages.index(language)][k] += 1
for row in range(len(languages)):
    confusion[row] = confusion[row] / confusion[row].sum()
plt.matshow(confusion.numpy())
accuracy = sum(confusion[row][row].item() for row in range(len(languages))) / len(languages)
print('mean per-language accuracy %.3f' % accuracy)

with torch.no_grad():
    out = read_name(model, encode('Rossini'))
    top_v, top_i = out.topk(3, 1, True)
    for k in range(3):
        print('(%.2f) %s' % (top_v[0][k].item(), languages[top_i[0][k].item()]))
