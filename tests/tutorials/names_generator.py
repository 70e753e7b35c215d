"""Generate surnames one letter at a time, conditioned on the language: a char-RNN in plain PyTorch.

Written for this test suite in the manner of PyTorch's char-RNN generation tutorial: the same data
layout (data/names/<Language>.txt), a category one-hot concatenated to each input, dropout, a loss
summed over steps starting from the int 0 (`loss += criterion(...)`), LongTensor targets grown with
unsqueeze_, the old `p.data.add_(-lr, p.grad.data)` update, and greedy sampling under torch.no_grad
that indexes a string with a 0-d tensor. Run as written under PyTorch, and under tinygrad_seq with
only its import lines rewritten.
"""
import glob
import os
import random
import string
import unicodedata
import warnings

import torch
import torch.nn as nn

LETTERS = string.ascii_letters + " .,;'-"
n_tokens = len(LETTERS) + 1  # the last index ends a name
n_iters = 2000
plot_every = 100
lr = 0.0005
warnings.filterwarnings('ignore', message='.*add_.*deprecated')  # torch warns about add_(Number, Tensor)


def to_ascii(s):
    return ''.join(ch for ch in unicodedata.normalize('NFD', s)
                   if unicodedata.category(ch) != 'Mn' and ch in LETTERS)


names_by_language = {}
for path in sorted(glob.glob('data/names/*.txt')):
    with open(path, encoding='utf-8') as f:
        lines = f.read().strip().split('\n')
    names_by_language[os.path.splitext(os.path.basename(path))[0]] = [to_ascii(n) for n in lines]
languages = list(names_by_language)
n_languages = len(languages)


class NameWriter(nn.Module):
    def __init__(self, n_in, n_hidden, n_out):
        super(NameWriter, self).__init__()
        self.n_hidden = n_hidden
        self.to_hidden = nn.Linear(n_languages + n_in + n_hidden, n_hidden)
        self.to_out = nn.Linear(n_languages + n_in + n_hidden, n_out)
        self.mix = nn.Linear(n_hidden + n_out, n_out)
        self.drop = nn.Dropout(0.1)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, language, letter, h):
        joined = torch.cat((language, letter, h), 1)
        h = self.to_hidden(joined)
        out = self.mix(torch.cat((h, self.to_out(joined)), 1))
        return self.log_softmax(self.drop(out)), h

    def init_state(self):
        return torch.zeros(1, self.n_hidden)


def language_onehot(language):
    t = torch.zeros(1, n_languages)
    t[0][languages.index(language)] = 1
    return t


def letters_onehot(text):
    t = torch.zeros(len(text), 1, n_tokens)
    for i in range(len(text)):
        t[i][0][LETTERS.find(text[i])] = 1
    return t


def next_letters(text):
    ids = [LETTERS.find(text[i]) for i in range(1, len(text))]
    ids.append(n_tokens - 1)
    return torch.LongTensor(ids)


def train_step(model, criterion, language_t, letters_t, targets):
    targets.unsqueeze_(-1)
    h = model.init_state()
    model.zero_grad()
    loss = 0
    for i in range(letters_t.size(0)):
        out, h = model(language_t, letters_t[i], h)
        loss += criterion(out, targets[i])
    loss.backward()
    for p in model.parameters():
        p.data.add_(-lr, p.grad.data)
    return loss.item() / letters_t.size(0)


model = NameWriter(n_tokens, 128, n_tokens)
criterion = nn.NLLLoss()
losses = []
running = 0
for it in range(1, n_iters + 1):
    language = languages[random.randint(0, n_languages - 1)]
    name = random.choice(names_by_language[language])
    running += train_step(model, criterion, language_onehot(language), letters_onehot(name), next_letters(name))
    if it % plot_every == 0:
        losses.append(running / plot_every)
        running = 0
        print(it, '%.4f' % losses[-1])

import matplotlib.pyplot as plt

plt.figure()
plt.plot(losses)


def write_name(language, first, max_len=20):
    with torch.no_grad():
        language_t = language_onehot(language)
        letter_t = letters_onehot(first)
        h = model.init_state()
        name = first
        for _ in range(max_len):
            out, h = model(language_t, letter_t[0], h)
            _, top = out.topk(1)
            top = top[0][0]
            if top == n_tokens - 1:
                break
            name += LETTERS[top]
            letter_t = letters_onehot(LETTERS[top])
        return name


for language, firsts in (('Russian', 'RUS'), ('German', 'GER'), ('Chinese', 'CHI')):
    print(language, [write_name(language, c) for c in firsts])
