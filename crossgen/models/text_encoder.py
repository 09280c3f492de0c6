"""Word2Vec text encoder: train on a corpus, save/load KeyedVectors, prompt -> sentence vector."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import CheckpointError, UnknownWordsError
from ..preprocess import check_prompt, tokenize

# Function words carry little meaning for a picture: they are dropped when other words are known.
STOPWORDS = frozenset("a an the of and or with in on at to for from by is are be this that its it".split())
MAX_WORDS = 12  # word vectors kept per prompt for a VAE that reads the words apart (CVAEConfig.max_words)


@dataclass
class Word2VecConfig:
    vector_size: int = 128
    window: int = 5
    min_count: int = 1
    sg: int = 1  # skip-gram: better vectors for rare words on a small corpus
    negative: int = 10
    epochs: int = 10
    seed: int = 0
    workers: int = 2
    holdout: bool = True  # emoji set: the captions of the compositional hold-out are left out


@dataclass
class Encoded:
    vector: np.ndarray  # (D,) float32, unit length
    words: np.ndarray  # (MAX_WORDS, D) float32: the unit vectors of the words averaged into `vector`, zero-padded
    known: list[str]
    unknown: list[str]
    suggestions: dict[str, list[str]]


class TextEncoder:
    """Wraps gensim KeyedVectors. A prompt's vector is the normalised mean of its known words' vectors."""

    def __init__(self, wv):
        self.wv = wv
        self._lower_vocab: list[str] | None = None

    @property
    def dim(self) -> int:
        return int(self.wv.vector_size)

    def __contains__(self, word: str) -> bool:
        return word in self.wv.key_to_index

    # ------------------------------------------------------------------ training / io
    @classmethod
    def train(cls, sentences: Iterable[list[str]], config: Word2VecConfig = Word2VecConfig()) -> "TextEncoder":
        """Train gensim Word2Vec on tokenised sentences and keep only its KeyedVectors."""
        from gensim.models import Word2Vec

        sentences = [s for s in sentences if s]
        model = Word2Vec(sentences=sentences, vector_size=config.vector_size, window=config.window,
                         min_count=config.min_count, sg=config.sg, negative=config.negative,
                         epochs=config.epochs, seed=config.seed, workers=config.workers)
        return cls(model.wv)

    def prune(self, keep: Iterable[str], max_words: int) -> "TextEncoder":
        """A copy with the `max_words` most frequent words plus every word in `keep` (smaller file)."""
        from gensim.models import KeyedVectors

        keep = set(keep)
        words = [w for i, w in enumerate(self.wv.index_to_key) if i < max_words or w in keep]
        kv = KeyedVectors(self.dim)
        kv.add_vectors(words, self.wv[words])
        return TextEncoder(kv)

    def save(self, path: str | Path) -> None:
        """Save the KeyedVectors in word2vec binary format (no pickle)."""
        self.wv.save_word2vec_format(str(path), binary=True)

    @classmethod
    def load(cls, path: str | Path) -> "TextEncoder":
        from gensim.models import KeyedVectors

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"Missing word vectors {path}; retrain with `python -m crossgen.train word2vec`.")
        try:
            return cls(KeyedVectors.load_word2vec_format(str(path), binary=True))
        except Exception as e:
            raise CheckpointError(f"Corrupt word vectors {path} ({type(e).__name__}: {e}).") from None

    # ------------------------------------------------------------------ inference
    def suggest(self, word: str, n: int = 3) -> list[str]:
        """Known words closest in spelling to an unknown word (typos, plurals, other forms)."""
        if self._lower_vocab is None:
            self._lower_vocab = list(self.wv.key_to_index)
        stem = [w for w in (word[:-1], word[:-2], word[:-3]) if len(w) > 2 and w in self]
        close = difflib.get_close_matches(word, self._lower_vocab, n=n, cutoff=0.75)
        return list(dict.fromkeys(stem + close))[:n]

    def encode_tokens(self, tokens: list[str]) -> Encoded:
        known = [t for t in tokens if t in self]
        unknown = [t for t in tokens if t not in self and t not in STOPWORDS]
        content = [t for t in known if t not in STOPWORDS] or known
        suggestions = {w: self.suggest(w) for w in unknown}
        if not content:
            raise UnknownWordsError(unknown, suggestions)
        v = np.mean([self.wv[t] for t in content], axis=0).astype(np.float32)
        v /= np.linalg.norm(v) + 1e-8
        return Encoded(v, self.word_vectors(content), known, unknown, suggestions)

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """Known words -> (MAX_WORDS, D) float32: their unit vectors in order (the first MAX_WORDS), zero-padded."""
        out = np.zeros((MAX_WORDS, self.dim), dtype=np.float32)
        for i, w in enumerate(words[:MAX_WORDS]):
            out[i] = self.wv[w] / (np.linalg.norm(self.wv[w]) + 1e-8)
        return out

    def encode(self, prompt: str) -> Encoded:
        """Prompt -> unit sentence vector + which words were known/unknown (+ suggestions)."""
        return self.encode_tokens(check_prompt(prompt))

    def content_words(self, text: str) -> list[str]:
        """The known words of a caption that `encode` averages (stopwords dropped unless nothing else is known)."""
        known = [t for t in tokenize(text) if t in self]
        return [t for t in known if t not in STOPWORDS] or known

    def encode_batch(self, texts: list[str], words: bool = False) -> np.ndarray:
        """Vectors for training captions, (N, D), or with `words` their word vectors flattened, (N, MAX_WORDS * D);
        a caption with no known word gets zeros."""
        out = np.zeros((len(texts), self.dim * (MAX_WORDS if words else 1)), dtype=np.float32)
        for i, t in enumerate(texts):
            try:
                e = self.encode_tokens(tokenize(t))
            except UnknownWordsError:
                continue
            out[i] = e.words.reshape(-1) if words else e.vector
        return out
