"""Stage `word2vec`: Word2Vec on the captions (emoji names, captions and keywords, or an external set's
captions), plus WordNet glosses (Debian's wordnet-base): the shipped set's 30,000 words, "puppy" and "kitty" among
them, come from the glosses; without them only the captions' ~4,600 words are known, so the stage stops unless
--no-wordnet asks for captions alone."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ..checkpoint import WORD_VECTORS, save_json
from ..data import load_records
from ..errors import DataNotFoundError
from ..models.text_encoder import TextEncoder, Word2VecConfig
from ..preprocess import tokenize

WORDNET = Path("/usr/share/wordnet")  # Debian package wordnet-base
CAPTION_REPEAT = 5  # the emoji captions are few: repeat them so they weigh against the glosses
MAX_WORDS = 30_000  # most frequent words kept besides every caption word (30k x 128 floats = 15 MB)


def wordnet_sentences(root: Path = WORDNET) -> list[list[str]]:
    """One sentence per synset: its lemmas followed by its gloss ("puppy: a young dog"). Raises DataNotFoundError
    when the glosses are not installed."""
    if not (root / "data.noun").is_file():
        raise DataNotFoundError(f"WordNet glosses not found in {root}: install them (`apt-get install wordnet-base`), "
                                "or pass --no-wordnet to train Word2Vec on the captions alone (a far smaller vocabulary)")
    sents = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith(" ") or "|" not in line:
                continue  # licence header
            head, gloss = line.split("|", 1)
            fields = head.split()
            n = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].split("(")[0].replace("_", " ") for i in range(n)]
            sents.append(tokenize(" ".join(lemmas) + " " + gloss.split(";")[0]))
    return [s for s in sents if s]


def caption_sentences(data: str | Path, exclude: set[str] = frozenset()) -> list[list[str]]:
    """Every caption of every training/validation record of the built emoji set, the name first; records of the
    concept ids in `exclude` (the compositional hold-out) left out."""
    sents = []
    for r in load_records(data):
        if r["split"] == "test" or r["id"] in exclude:
            continue
        for c in dict.fromkeys([r["name"], *r["captions"], " ".join(r.get("keywords", []))]):
            sents.append(tokenize(c))
    return [s for s in sents if s]


def external_sentences(records: dict[str, list[dict]]) -> list[list[str]]:
    """Every train/validation caption of an external set (split -> records)."""
    return [s for split in ("train", "val") for r in records[split] for c in r["captions"] if (s := tokenize(c))]


def train_word2vec(captions: list[list[str]], out: str | Path, cfg: Word2VecConfig, wordnet: bool = True,
                   repeat: int = 1) -> dict:
    """Word2Vec on caption sentences, repeated `repeat` times (few captions then weigh against the glosses),
    plus WordNet glosses when `wordnet` (DataNotFoundError when they are not installed); pruned to the caption words
    and the MAX_WORDS most frequent others. Writes `<out>/word2vec.bin` and `word2vec.json`; run on one rank."""
    t0 = time.time()
    glosses = wordnet_sentences() if wordnet else []
    encoder = TextEncoder.train(captions * repeat + glosses, cfg)
    encoder = encoder.prune((w for s in captions for w in s), MAX_WORDS)
    Path(out).mkdir(parents=True, exist_ok=True)
    encoder.save(Path(out) / WORD_VECTORS)
    info = {"vocab": len(encoder.wv), "caption_sentences": len(captions), "wordnet_sentences": len(glosses),
            "wordnet": str(WORDNET) if glosses else None, "seconds": round(time.time() - t0, 1), "config": asdict(cfg)}
    save_json(Path(out) / "word2vec.json", info)
    print(f"[word2vec] {info}")
    return info
