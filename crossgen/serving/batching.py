"""Micro-batching for the Pipeline: concurrent calls are collected by one worker thread and run as one batch.

The worker takes whatever is queued when it becomes free, so a lone request runs at once (no waiting
window) and, under load, requests that arrive while a batch runs form the next batch. Batched results
equal unbatched ones: images keep their own seeds and beams never mix across images.
"""
from __future__ import annotations

import copy
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn as nn
from torch.fx.experimental.optimization import fuse

from ..models.captioner import Captioner, Hypothesis
from ..models.image_features import ImageFeatures
from ..models.vae import CVAE, Drawn
from ..postprocess.confidence import DomainCheck
from ..preprocess import imagenet_normalize

T = TypeVar("T")
R = TypeVar("R")


def batching_enabled() -> bool:
    """`CROSSGEN_BATCHING=0` turns micro-batching off (every call runs on its caller's thread)."""
    return os.environ.get("CROSSGEN_BATCHING", "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class _Job(Generic[T, R]):
    item: T
    done: threading.Event = field(default_factory=threading.Event)
    result: R | None = None
    error: BaseException | None = None


class MicroBatcher(Generic[T, R]):
    """`batcher(item)` blocks until `run([..., item, ...])` has produced its result.

    run: list of items -> list of results, same order. Calls from many threads are queued; one worker
    thread (started on first use) runs up to `max_batch` of them at a time. enabled=False runs each
    call alone on the caller's thread.
    """

    def __init__(self, run: Callable[[list[T]], list[R]], max_batch: int = 16, enabled: bool = True,
                 name: str = "crossgen-batcher"):
        self.run, self.max_batch, self.enabled, self.name = run, max_batch, enabled, name
        self._queue: queue.SimpleQueue[_Job[T, R]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batch_sizes: list[int] = []  # sizes of the batches run so far (for the benchmark)

    def __call__(self, item: T) -> R:
        if not self.enabled:
            return self.run([item])[0]
        job: _Job[T, R] = _Job(item)
        self._start()
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _start(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._worker.start()

    def _loop(self) -> None:
        while True:
            jobs = [self._queue.get()]
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.batch_sizes.append(len(jobs))
            try:
                results = self.run([j.item for j in jobs])
                for job, result in zip(jobs, results):
                    job.result = result
            except BaseException as e:  # noqa: BLE001 - handed to every waiting caller
                for job in jobs:
                    job.error = e
            for job in jobs:
                job.done.set()


def group_by(items: list[T], key: Callable[[T], Hashable]) -> dict[Hashable, list[int]]:
    """Indices of items sharing a key, in order."""
    groups: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    return groups


def fused_backbone(features: ImageFeatures) -> nn.Module:
    """An inference copy of the ResNet18 backbone: batch norms folded into the convolutions, channels-last."""
    backbone = copy.deepcopy(features.backbone).eval()
    return fuse(backbone).to(memory_format=torch.channels_last)


@dataclass
class SampleRequest:
    vector: np.ndarray  # (text_in,) the VAE's text input: the prompt's word vectors flattened
    n: int
    temperature: float
    generator: torch.Generator


@dataclass
class CaptionRequest:
    image: torch.Tensor  # (1, 3, S, S) in [0, 1]
    beam: int
    max_len: int
    n_best: int
    length_penalty: float


class Captions(NamedTuple):
    hyps: list[Hypothesis]  # the n-best, best first
    concepts: torch.Tensor | None  # (K,) the concept head's probabilities from the same features; None without a head
    domain: float | None = None  # the out-of-domain check's score of the same features; None without a check


class BatchedModels:
    """The Pipeline's VAE and ResNet18 + LSTM behind two micro-batchers.

    sample(...) draws like `CVAE.sample` with the request's own generator (both through `CVAE.sample_requests`); caption(...) returns what
    `Captioner.generate(features.embed(image))` returns, with the concept head's probabilities of those features
    and the out-of-domain check's score (`domain`, when given). enabled=None reads CROSSGEN_BATCHING.
    """

    def __init__(self, vae: CVAE, features: ImageFeatures, captioner: Captioner, enabled: bool | None = None,
                 max_batch: int = 16, domain: DomainCheck | None = None):
        self.vae, self.features, self.captioner, self.domain = vae, features, captioner, domain
        enabled = batching_enabled() if enabled is None else enabled
        self.samples = MicroBatcher(self._sample_batch, max_batch, enabled, "crossgen-text-to-image")
        self.captions = MicroBatcher(self._caption_batch, max_batch, enabled, "crossgen-image-to-text")
        # built now, not on first use: torch.fx tracing patches nn.Module.__call__ for the whole process, so
        # tracing while another thread runs the VAE broke those requests (NameError under concurrent load)
        self._backbone = fused_backbone(features)

    def sample(self, vector: np.ndarray, n: int, temperature: float, generator: torch.Generator) -> Drawn:
        """n images (n, 3, H, W) in [0, 1] for one text input, and the exemplar each was drawn near."""
        return self.samples(SampleRequest(vector, n, temperature, generator))

    def caption(self, image: torch.Tensor, beam: int, max_len: int, n_best: int,
                length_penalty: float) -> Captions:
        """The n-best hypotheses for one (1, 3, S, S) image, best first, and its concept probabilities."""
        return self.captions(CaptionRequest(image, beam, max_len, n_best, length_penalty))

    # ------------------------------------------------------------------ batch runners (worker thread)
    def _sample_batch(self, reqs: list[SampleRequest]) -> list[Drawn]:
        vectors = torch.from_numpy(np.stack([r.vector for r in reqs]))  # (R, text_in)
        return self.vae.sample_requests(vectors, [self.vae.noise(r.n, r.temperature, r.generator) for r in reqs])

    def backbone(self) -> nn.Module:
        """The folded channels-last ResNet18 (built with the pipeline)."""
        return self._backbone

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, 512): `ImageFeatures.embed` on the folded channels-last copy."""
        device = next(self.features.parameters()).device
        x = imagenet_normalize(images.to(device)).contiguous(memory_format=torch.channels_last)
        return self.backbone()(x)

    @torch.inference_mode()
    def _caption_batch(self, reqs: list[CaptionRequest]) -> list[Captions]:
        feats = self.embed(torch.cat([r.image for r in reqs]))
        probs = self.features.concepts(feats)  # (B, K) or None: a matmul beside the backbone
        domain = self.domain.score(feats, probs).tolist() if self.domain is not None else [None] * len(reqs)  # (B,)
        out: list[list[Hypothesis]] = [[] for _ in reqs]
        for (beam, max_len, penalty), idx in group_by(reqs, lambda r: (r.beam, r.max_len, r.length_penalty)).items():
            n_best = max(reqs[i].n_best for i in idx)  # the top few do not depend on how many are kept
            hyps = self.captioner.generate(feats[idx], beam=beam, max_len=max_len, n_best=n_best,
                                           length_penalty=penalty)
            for i, h in zip(idx, hyps):
                out[i] = h[:reqs[i].n_best]
        return [Captions(h, probs[i] if probs is not None else None, domain[i]) for i, h in enumerate(out)]
