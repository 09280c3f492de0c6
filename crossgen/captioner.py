"""Show-and-Tell style LSTM captioner conditioned on image features, with greedy and beam search."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import torch
import torch.nn as nn

from .preprocess import tokenize

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]


class Vocab:
    """Word <-> id mapping with <pad>=0, <bos>=1, <eos>=2, <unk>=3."""

    def __init__(self, words: Iterable[str]):
        self.itos = SPECIALS + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> "Vocab":
        counts = Counter(t for text in texts for t in tokenize(text))
        return cls(sorted(w for w, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.itos)

    pad, bos, eos, unk = 0, 1, 2, 3

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """Text -> [<bos>, ids..., <eos>] (words past max_len are cut)."""
        ids = [self.stoi.get(t, self.unk) for t in tokenize(text)][:max_len]
        return [self.bos] + ids + [self.eos]

    def decode(self, ids: Iterable[int]) -> str:
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i not in (self.pad, self.bos):
                words.append(self.itos[i])
        return " ".join(words)

    def to_json(self) -> list[str]:
        return self.itos[len(SPECIALS):]


@dataclass
class CaptionerConfig:
    vocab_size: int = 1000
    feature_dim: int = 512
    embed_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 1
    dropout: float = 0.3
    max_len: int = 20


class Hypothesis(NamedTuple):
    tokens: list[int]  # without <bos>/<eos>
    logprob: float  # sum of token log-probabilities, <eos> included
    score: float  # logprob after the length penalty: what the beam ranks by


class Captioner(nn.Module):
    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = config
        E, H, L = config.embed_dim, config.hidden_dim, config.num_layers
        self.embed = nn.Embedding(config.vocab_size, E, padding_idx=0)
        self.img_proj = nn.Sequential(nn.Linear(config.feature_dim, E), nn.Tanh())
        self.init_h = nn.Linear(config.feature_dim, L * H)
        self.init_c = nn.Linear(config.feature_dim, L * H)
        self.lstm = nn.LSTM(2 * E, H, num_layers=L, batch_first=True,
                            dropout=config.dropout if L > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(H, config.vocab_size)

    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, H = len(features), self.config.num_layers, self.config.hidden_dim
        h = torch.tanh(self.init_h(features)).view(B, L, H).transpose(0, 1).contiguous()  # (L, B, H)
        c = torch.tanh(self.init_c(features)).view(B, L, H).transpose(0, 1).contiguous()  # (L, B, H)
        return h, c

    def step(self, tokens: torch.Tensor, img: torch.Tensor, state):
        """tokens (B, T), img (B, E) -> logits (B, T, V), new state."""
        x = self.embed(tokens)  # (B, T, E)
        x = torch.cat([x, img[:, None].expand(-1, x.shape[1], -1)], dim=-1)  # (B, T, 2E)
        h, state = self.lstm(self.drop(x), state)  # (B, T, H)
        return self.out(self.drop(h)), state

    def forward(self, features: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """Teacher forcing. features (B, F), captions (B, T) = <bos> w1 .. wn <eos> <pad>..
        -> logits (B, T-1, V) predicting captions[:, 1:]."""
        logits, _ = self.step(captions[:, :-1], self.img_proj(features), self.init_state(features))
        return logits

    def next_logprobs(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, V) logits of the next word -> log-probabilities; <pad>, <bos>, <unk> are never generated."""
        logits = logits.clone()
        logits[:, [Vocab.pad, Vocab.bos, Vocab.unk]] = float("-inf")
        return logits.log_softmax(-1)

    @torch.inference_mode()
    def greedy(self, features: torch.Tensor, max_len: int | None = None) -> list[Hypothesis]:
        """Arg-max decoding, one hypothesis per image."""
        max_len = max_len or self.config.max_len
        B = len(features)
        img, state = self.img_proj(features), self.init_state(features)
        tok = torch.full((B, 1), 1, dtype=torch.long, device=features.device)  # <bos>
        out = [[] for _ in range(B)]
        logp = torch.zeros(B, device=features.device)
        done = torch.zeros(B, dtype=torch.bool, device=features.device)
        for t in range(max_len + 1):
            logits, state = self.step(tok, img, state)
            lp = self.next_logprobs(logits[:, -1])  # (B, V)
            best = lp.argmax(-1) if t < max_len else torch.full_like(done, Vocab.eos, dtype=torch.long)
            logp += torch.where(done, 0.0, lp.gather(1, best[:, None])[:, 0])
            for b in range(B):
                if not done[b] and best[b] != Vocab.eos:
                    out[b].append(int(best[b]))
            done |= best == Vocab.eos
            if done.all():
                break
            tok = best[:, None]
        return [Hypothesis(t, float(s), float(s)) for t, s in zip(out, logp)]

    @torch.inference_mode()
    def generate(self, features: torch.Tensor, beam: int = 3, max_len: int | None = None,
                 n_best: int = 1, length_penalty: float = 0.0) -> list[list[Hypothesis]]:
        """Beam search on one batched tensor. features (B, F) -> per image, up to n_best hypotheses,
        best first. beam=1 is greedy decoding. Scores are logprob / ((5 + len) / 6) ** length_penalty (0 = plain log-probability)."""
        max_len = max_len or self.config.max_len
        B, k, V, dev = len(features), beam, self.config.vocab_size, features.device
        img = self.img_proj(features).repeat_interleave(k, dim=0)  # (B*k, E)
        h, c = self.init_state(features)
        state = (h.repeat_interleave(k, dim=1), c.repeat_interleave(k, dim=1))  # (L, B*k, H)
        scores = torch.full((B, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all beams start identical: keep one
        seqs = torch.empty(B * k, 0, dtype=torch.long, device=dev)
        tok = torch.full((B * k, 1), Vocab.bos, dtype=torch.long, device=dev)
        finished: list[list[Hypothesis]] = [[] for _ in range(B)]
        penalty = lambda n: ((5 + n) / 6) ** length_penalty  # noqa: E731
        for t in range(max_len + 1):
            logits, state = self.step(tok, img, state)
            lp = self.next_logprobs(logits[:, -1]).view(B, k, V)  # (B, k, V)
            if t == max_len:  # out of room: only <eos> may follow
                mask = torch.full_like(lp, float("-inf"))
                mask[..., Vocab.eos] = 0
                lp = lp + mask
            cand = (scores[..., None] + lp).view(B, k * V)  # (B, k*V)
            top, idx = cand.topk(2 * k, dim=1)  # room for k that do not end here
            beam_idx, word = idx // V, idx % V  # (B, 2k)
            new_scores = torch.full((B, k), float("-inf"), device=dev)
            new_src = torch.zeros(B, k, dtype=torch.long, device=dev)
            new_word = torch.zeros(B, k, dtype=torch.long, device=dev)
            for b in range(B):
                j = 0
                for rank, (s, bi, w) in enumerate(zip(top[b].tolist(), beam_idx[b].tolist(), word[b].tolist())):
                    if s == float("-inf"):
                        break
                    if w == Vocab.eos:  # an ending counts only among the k best (so beam=1 is greedy)
                        if rank < k:
                            toks = seqs[b * k + bi].tolist()
                            finished[b].append(Hypothesis(toks, s, s / penalty(len(toks) + 1)))
                    elif j < k:
                        new_scores[b, j], new_src[b, j], new_word[b, j] = s, bi, w
                        j += 1
            src = (new_src + torch.arange(B, device=dev)[:, None] * k).view(-1)  # (B*k,)
            seqs = torch.cat([seqs[src], new_word.view(-1, 1)], dim=1)
            state = (state[0][:, src], state[1][:, src])
            scores, tok = new_scores, new_word.view(-1, 1)
            if all(len(f) >= max(k, n_best) for f in finished):
                # stop once no live beam can beat the n-th best finished hypothesis
                best_live = scores.max(dim=1).values.tolist()
                if all(sorted((h.score for h in f), reverse=True)[n_best - 1]
                       >= max(bl / penalty(t + 2), bl / penalty(max_len + 1))
                       for f, bl in zip(finished, best_live)):
                    break
        return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]
