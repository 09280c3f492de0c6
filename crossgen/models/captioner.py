"""Show-and-Tell style LSTM captioner conditioned on image features, with greedy and beam search."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import torch
import torch.nn as nn

from ..preprocess import tokenize

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

    def _fast_tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inference tables for a one-layer LSTM, cached until the weights change: the input gates of
        every word (V, 4H) with both biases folded in, the image half of W_ih (4H, E), and W_hh^T (H, 4H)."""
        lstm, E = self.lstm, self.config.embed_dim
        params = (self.embed.weight, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        key = tuple((p.data_ptr(), p._version, p.device) for p in params)
        cached = getattr(self, "_tables", None)
        if cached is None or cached[0] != key:
            w_ih = lstm.weight_ih_l0
            words = torch.addmm(lstm.bias_ih_l0 + lstm.bias_hh_l0, self.embed.weight, w_ih[:, :E].t())
            self._tables = cached = (key, (words, w_ih[:, E:].contiguous(), lstm.weight_hh_l0.t()))
        return cached[1]

    def _decoder(self, features: torch.Tensor, repeat: int):
        """(state, step) for decoding `repeat` rows per image: step(tokens (N,), state) -> (log-probs (N, V),
        state), state = (h, c) each (L, N, H) so rows can be reordered with `[:, src]`. A one-layer LSTM
        in eval mode runs as a hand-written cell on cached tables (no concatenation, no W_ih product per
        step); anything else goes through `step`."""
        h, c = (s.repeat_interleave(repeat, dim=1) for s in self.init_state(features))
        img = self.img_proj(features).repeat_interleave(repeat, dim=0)  # (N, E)
        banned = torch.zeros(self.config.vocab_size, device=features.device)
        banned[[Vocab.pad, Vocab.bos, Vocab.unk]] = float("-inf")  # never generated
        if self.training or self.config.num_layers != 1:
            def step(tok, state):
                logits, state = self.step(tok[:, None], img, state)
                return (logits[:, -1] + banned).log_softmax(-1), state
            return (h, c), step
        words, w_img, w_hh_t = self._fast_tables()
        img_gates = img @ w_img.t()  # (N, 4H): the image's share of the input gates, fixed per row

        def step(tok, state):
            gates = torch.addmm(img_gates + words[tok], state[0][0], w_hh_t)  # (N, 4H)
            i, f, g, o = gates.chunk(4, dim=1)
            c1 = torch.sigmoid(f) * state[1][0] + torch.sigmoid(i) * torch.tanh(g)
            h1 = torch.sigmoid(o) * torch.tanh(c1)
            logits = torch.addmm(self.out.bias, h1, self.out.weight.t())
            return (logits + banned).log_softmax(-1), (h1[None], c1[None])
        return (h, c), step

    @torch.inference_mode()
    def greedy(self, features: torch.Tensor, max_len: int | None = None) -> list[Hypothesis]:
        """Arg-max decoding, one hypothesis per image."""
        max_len = max_len or self.config.max_len
        B, dev = len(features), features.device
        state, step = self._decoder(features, 1)
        tok = torch.full((B,), Vocab.bos, dtype=torch.long, device=dev)
        words = torch.full((B, max_len + 1), Vocab.eos, dtype=torch.long, device=dev)
        logp = torch.zeros(B, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        for t in range(max_len + 1):
            lp, state = step(tok, state)  # (B, V)
            best = lp.argmax(-1) if t < max_len else torch.full_like(tok, Vocab.eos)
            logp += torch.where(done, 0.0, lp.gather(1, best[:, None])[:, 0])
            words[:, t] = torch.where(done, Vocab.eos, best)
            done |= best == Vocab.eos
            if bool(done.all()):
                break
            tok = best
        out = []
        for row, s in zip(words.tolist(), logp.tolist()):
            tokens = row[:row.index(Vocab.eos)]
            out.append(Hypothesis(tokens, s, s))
        return out

    @torch.inference_mode()
    def generate(self, features: torch.Tensor, beam: int = 3, max_len: int | None = None,
                 n_best: int = 1, length_penalty: float = 0.0) -> list[list[Hypothesis]]:
        """Beam search on one batched tensor. features (B, F) -> per image, up to n_best hypotheses,
        best first. beam=1 is greedy decoding. Scores are logprob / ((5 + len) / 6) ** length_penalty (0 = plain log-probability).

        Every image keeps k = beam live rows (B*k rows in all, image b in rows b*k .. b*k+k-1). Each step
        scores all k*V one-word extensions of an image's beams, keeps the 2k best (so k can go on even if up
        to k of them end with <eos>), files the endings among the k best as finished hypotheses and carries
        the k best non-endings into the next step."""
        max_len = max_len or self.config.max_len
        B, k, V, dev = len(features), beam, self.config.vocab_size, features.device
        state, step = self._decoder(features, k)  # state: (h, c), each (L, B*k, H)
        scores = torch.full((B, k), float("-inf"), device=dev)  # (B, k) log-probability of each live beam
        scores[:, 0] = 0.0  # all beams start identical: keep one
        seqs = torch.empty(B * k, 0, dtype=torch.long, device=dev)  # (B*k, t) words so far of each live beam
        tok = torch.full((B * k,), Vocab.bos, dtype=torch.long, device=dev)  # (B*k,) the word fed next
        finished: list[list[Hypothesis]] = [[] for _ in range(B)]
        penalty = lambda n: ((5 + n) / 6) ** length_penalty  # noqa: E731
        rank = torch.arange(2 * k, device=dev)  # (2k,) place of a candidate among an image's 2k best
        offsets = torch.arange(B, device=dev)[:, None] * k  # (B, 1): first row of each image's beams
        only_eos = torch.full((V,), float("-inf"), device=dev)  # (V,) adds -inf to every word but <eos>
        only_eos[Vocab.eos] = 0.0
        for t in range(max_len + 1):
            lp, state = step(tok, state)  # (B*k, V) log-probabilities of the next word
            lp = lp.view(B, k, V)
            if t == max_len:  # out of room: only <eos> may follow
                lp = lp + only_eos
            # (B, 2k) the best extensions of each image's beams: their total scores and flat indices into k*V
            top, idx = (scores[..., None] + lp).view(B, k * V).topk(2 * k, dim=1)  # room for k that do not end here
            src, word = idx // V, idx % V  # (B, 2k) the beam each extends and the word it adds
            alive, is_eos = top > float("-inf"), word == Vocab.eos  # (B, 2k) each
            ended = alive & is_eos & (rank < k)  # (B, 2k) an ending counts only among the k best (so beam=1 is greedy)
            going = alive & ~is_eos  # (B, 2k) candidates that go on
            # (B, 2k) the slot 0..k-1 of the k best that go on, in score order; k = dropped
            slot = torch.where(going, going.cumsum(1) - 1, k).clamp_(max=k)
            # (B, k) the next live beams: scatter into k+1 slots, the extra one collecting the dropped
            new_scores = torch.full((B, k + 1), float("-inf"), device=dev).scatter_(1, slot, top)[:, :k]
            new_src = torch.zeros(B, k + 1, dtype=torch.long, device=dev).scatter_(1, slot, src)[:, :k]
            new_word = torch.zeros(B, k + 1, dtype=torch.long, device=dev).scatter_(1, slot, word)[:, :k]
            if bool(ended.any()):
                rows = (src + offsets)[ended].tolist()  # the (B*k) row of each ending's beam
                for (b, _), row, s in zip(ended.nonzero().tolist(), rows, top[ended].tolist()):
                    toks = seqs[row].tolist()
                    finished[b].append(Hypothesis(toks, s, s / penalty(len(toks) + 1)))
            rows = (new_src + offsets).reshape(-1)  # (B*k,) the row each next beam extends
            seqs = torch.cat([seqs[rows], new_word.reshape(-1, 1)], dim=1)  # (B*k, t+1)
            state = (state[0][:, rows], state[1][:, rows])  # the LSTM state follows its beam: (L, B*k, H) each
            scores, tok = new_scores, new_word.reshape(-1)  # (B, k), (B*k,)
            if all(len(f) >= max(k, n_best) for f in finished):
                # stop once no live beam can beat the n-th best finished hypothesis
                best_live = scores.max(dim=1).values.tolist()  # (B,) as a list
                if all(sorted((h.score for h in f), reverse=True)[n_best - 1]
                       >= max(bl / penalty(t + 2), bl / penalty(max_len + 1))
                       for f, bl in zip(finished, best_live)):
                    break
        return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]
