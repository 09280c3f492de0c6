"""Which words of a prompt the word vectors know, suggestions for the others, and swapping a word in."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..models.text_encoder import STOPWORDS, TextEncoder
from ..preprocess import check_prompt, normalize_text

KNOWN, UNKNOWN = "known", "unknown"
_RAW_WORD = re.compile(r"[^\s\-_/,;:.!?()\[\]{}\"]+")


@dataclass
class PromptWords:
    words: list[tuple[str, str | None]]  # (word, "known" | "unknown" | None for an ignored function word)
    suggestions: dict[str, list[str]]  # unknown word -> known words, closest first (may be empty)

    @property
    def unknown(self) -> list[str]:
        return [w for w, label in self.words if label == UNKNOWN]


def split_compound(encoder: TextEncoder, word: str, min_part: int = 2) -> str | None:
    """"sunflowerpot" -> "sunflower pot": two known words that spell an unknown one (most balanced split)."""
    splits = [(word[:i], word[i:]) for i in range(min_part, len(word) - min_part + 1)]
    splits = [(a, b) for a, b in splits if a in encoder and b in encoder]
    if not splits:
        return None
    a, b = max(splits, key=lambda s: min(len(s[0]), len(s[1])))
    return f"{a} {b}"


def suggestions_for(encoder: TextEncoder, word: str, n: int = 3) -> list[str]:
    """Known words close in spelling (`TextEncoder.suggest`), then a split into two known words."""
    out = list(encoder.suggest(word, n=n))
    compound = split_compound(encoder, word)
    if compound and compound not in out:
        out.append(compound)
    return out[: n + 1]


def analyse(encoder: TextEncoder, prompt: str) -> PromptWords:
    """Label each normalised word as the encoder uses it. Raises InvalidPromptError for an empty or
    over-long prompt, but (unlike encoding) not when no word is known: that is what the hints are for."""
    tokens = check_prompt(prompt)
    known = [t for t in tokens if t in encoder]
    content = set(t for t in known if t not in STOPWORDS) or set(known)
    words = []
    for t in tokens:
        words.append((t, KNOWN if t in content else UNKNOWN if t not in encoder and t not in STOPWORDS else None))
    unknown = list(dict.fromkeys(w for w, label in words if label == UNKNOWN))
    return PromptWords(words, {w: suggestions_for(encoder, w) for w in unknown})


def replace_word(prompt: str, word: str, replacement: str) -> str:
    """The prompt with every occurrence of `word` (as normalised: any case, accents, apostrophes)
    replaced by `replacement`; the rest of the text is kept as typed."""
    word = normalize_text(word)
    if not word:
        return prompt
    out, hit = [], False
    last = 0
    for m in _RAW_WORD.finditer(prompt):
        if normalize_text(m.group()) == word:
            out += [prompt[last:m.start()], replacement]
            last, hit = m.end(), True
    if hit:
        return "".join(out + [prompt[last:]])
    # the word only exists after normalisation (e.g. "#" -> "hash"): rebuild from the normalised words
    return " ".join(replacement if t == word else t for t in normalize_text(prompt).split())
