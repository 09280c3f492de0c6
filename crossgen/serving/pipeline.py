"""The Pipeline: every model loaded once, on one device, behind two calls."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..checkpoint import WORD_VECTORS, load_json, load_model, verify_manifest
from ..data.records import split_config
from ..device import get_device
from ..errors import CheckpointError, InvalidPromptError, InvalidRequestError, NotAnEmojiError
from ..imaging.colour import recolour
from ..models.captioner import Captioner, CaptionerConfig, Vocab
from ..models.image_features import FeatureConfig, ImageFeatures
from ..models.text_encoder import Encoded, TextEncoder
from ..models.vae import CVAE, CVAEConfig
from ..postprocess.chain import PostProcess, Reading
from ..postprocess.skin_tone import PHRASE, TONES
from ..preprocess import ImageInput, load_image, normalize_text, resize, to_pil, to_tensor
from .batching import BatchedModels
from .edit import colour_mask, edited_caption, paint, retone
from .interpolation import MAX_FRAMES, MIN_FRAMES, Interpolation, decode_path
from .prompt_hints import PromptWords, analyse
from .seeds import MAX_SEED, resolve_seed  # noqa: F401  (MAX_SEED: part of this module's API)

MAX_IMAGES = 16
MAX_BEAM = 10


def default_checkpoints() -> Path:
    """`CROSSGEN_CHECKPOINTS`, else the `checkpoints/` folder next to the package."""
    return Path(os.environ.get("CROSSGEN_CHECKPOINTS") or Path(__file__).resolve().parents[2] / "checkpoints")


@dataclass
class Credit:
    """The training drawing an image was drawn from: its name, the artwork it belongs to and that artwork's licence
    (several ask for attribution)."""
    name: str  # "red apple"
    artwork: str  # "Noto Emoji (Google)"
    licence: str  # "Apache-2.0"


@dataclass
class Generation:
    images: list[Image.Image]
    seed: int
    prompt: Encoded
    credits: list[Credit | None]  # per image, the drawing it came from (None for a VAE without exemplars)


@dataclass
class Edited:
    """An emoji edited with words (`Pipeline.edit`)."""
    image: Image.Image  # the edited drawing, 64 x 64
    read: str  # the image's name as read (or as given)
    caption: str  # the caption it was drawn under: the name with the words applied
    kind: str  # "colour", "tone" or "caption" (`crossgen.serving.edit.KINDS`)
    credit: Credit | None = None  # with an artist asked for: the drawing of that artist it was drawn from


class Pipeline:
    """Text -> image (Word2Vec + CVAE) and image -> text (ResNet18 + LSTM), all on `device`."""

    def __init__(self, text_encoder: TextEncoder, vae: CVAE, features: ImageFeatures, captioner: Captioner,
                 vocab: Vocab, device: torch.device, info: dict | None = None, postprocess: PostProcess | None = None,
                 sources: dict | None = None):
        self.text_encoder, self.vae, self.features, self.captioner = text_encoder, vae, features, captioner
        self.sources = sources or {}  # the VAE's exemplar rows as training drawings (`train.vae.exemplar_sources`)
        self.vocab, self.device, self.info = vocab, device, info or {}
        self.postprocess = postprocess or PostProcess()  # what the n-best goes through (none: the captioner's own)
        # micro-batching of concurrent calls; the domain probe reads the features of the same batch
        self.batched = BatchedModels(vae, features, captioner, domain=self.postprocess.confidence.domain)

    @classmethod
    def from_checkpoints(cls, directory: str | Path, device: str | torch.device = "auto", verify: bool = True) -> "Pipeline":
        """Load every model from a checkpoint folder (safetensors + JSON, checked against manifest.json)."""
        directory, device = Path(directory), get_device(device)
        if not directory.is_dir() or not any(directory.glob("*.safetensors")):
            raise CheckpointError(f"No checkpoints installed in {directory}. Restore them with "
                                  "`git checkout -- checkpoints/` or train them with `python -m crossgen.train all`.")
        info = verify_manifest(directory) if verify else {}
        vae, vae_meta = load_model(directory, "vae", CVAE, CVAEConfig, device)
        features, _ = load_model(directory, "features", ImageFeatures, FeatureConfig, device)
        captioner, meta = load_model(directory, "captioner", Captioner, CaptionerConfig, device)
        vocab = Vocab(meta["vocab"])
        text_encoder = TextEncoder.load(directory / WORD_VECTORS)
        if text_encoder.dim != vae.config.text_dim:
            raise CheckpointError(f"Word vectors ({text_encoder.dim}-d) do not match the VAE ({vae.config.text_dim}-d) in {directory}.")
        postprocess = PostProcess.load(directory, features.config.num_classes, features.config.feature_dim)
        return cls(text_encoder, vae, features, captioner, vocab, device, info, postprocess, vae_meta.get("sources"))

    # ------------------------------------------------------------------ text -> image
    def encode_prompt(self, prompt: str) -> Encoded:
        """Prompt -> sentence vector, known and unknown words (InvalidPromptError / UnknownWordsError)."""
        return self.text_encoder.encode(prompt)

    def text_input(self, encoded: Encoded) -> np.ndarray:
        """What the VAE reads of an encoded prompt: its word vectors (T * D,)."""
        return encoded.words.reshape(-1)

    def generate(self, prompt: str, n: int = 4, seed: int | None = None, temperature: float = 1.0) -> Generation:
        """Images for a prompt, with the seed used (random when None) and the word analysis."""
        if not 1 <= int(n) <= MAX_IMAGES:
            raise InvalidRequestError(f"Number of images must be between 1 and {MAX_IMAGES}, not {n}.")
        if not 0.0 <= float(temperature) <= 3.0:
            raise InvalidRequestError(f"Temperature must be between 0 and 3, not {temperature}.")
        seed = resolve_seed(seed)
        encoded = self.encode_prompt(prompt)
        generator = torch.Generator("cpu").manual_seed(seed)
        drawn = self.batched.sample(self.text_input(encoded), int(n), float(temperature), generator)  # = vae.sample, batched with concurrent calls
        return Generation(to_pil(self.paint_tone(prompt, drawn.images)), seed, encoded,
                          [self.credit(int(r)) for r in drawn.exemplars])

    def paint_tone(self, prompt: str, images: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) images of a prompt that names one skin tone -> their skin moved to that tone's palette
        colour of the skin-tone reader, shading kept (`crossgen.serving.edit.retone`): the decoder paints tones poorly
        (validation, toned concepts the generator never saw by name: tone and person right 28.1 % as drawn, 93.1 %
        painted; docs/experiments.md). Other prompts' images, and all without a reader, are returned as they are."""
        tones = set(PHRASE.findall(normalize_text(prompt)))
        if self.postprocess.skin_tone is None or len(tones) != 1:
            return images
        tone = TONES.index(tones.pop())
        return torch.stack([retone(x, self.postprocess.skin_tone, tone) for x in images.cpu()])

    def credit(self, row: int) -> Credit | None:
        """The training drawing of exemplar `row` (None for -1, or a checkpoint that does not record its drawings)."""
        names, artists = self.sources.get("name", []), self.sources.get("artists", [])
        if not 0 <= row < len(names):
            return None
        style = artists[self.sources["artist"][row]]
        spec = split_config()["styles"].get(style, {})
        return Credit(names[row], spec.get("artwork", style), spec.get("licence", "unknown"))

    def text_to_image(self, prompt: str, n: int = 4, seed: int | None = None, temperature: float = 1.0) -> list[Image.Image]:
        """n 64x64 images for a prompt. The same prompt and seed give the same images."""
        return self.generate(prompt, n, seed, temperature).images

    # ------------------------------------------------------------------ image -> text
    def image_tensor(self, image: ImageInput) -> torch.Tensor:
        """Any readable image -> (1, 3, S, S) in [0, 1] at the feature extractor's size."""
        return to_tensor(resize(load_image(image), self.features.config.image_size))

    def image_to_text(self, image: ImageInput, beam: int = 3, max_len: int = 20, n_best: int = 3,
                      length_penalty: float = 0.0) -> list[tuple[str, float]]:
        """The n-best captions of an image with their log-probabilities, best first. When the best caption's
        probability is below the shipped fallback threshold, the feature model's concept head names the image
        instead (its most probable concepts, with their log-probabilities). Skin-tone words are then read from the
        image's colours. `read` gives the same captions with their calibrated probabilities and the out-of-domain
        flag (the steps: `crossgen/postprocess/chain.py`)."""
        return self.read(image, beam, max_len, n_best, length_penalty).captions

    def read(self, image: ImageInput, beam: int = 3, max_len: int = 20, n_best: int = 3,
             length_penalty: float = 0.0) -> Reading:
        """`image_to_text`'s captions, each with the calibrated chance that it is the image's exact name, and
        whether the image looks like an emoji at all (`PostProcess.read`)."""
        if not 1 <= int(beam) <= MAX_BEAM:
            raise InvalidRequestError(f"Beam width must be between 1 and {MAX_BEAM}, not {beam}.")
        if not 1 <= int(max_len) <= 50:
            raise InvalidRequestError(f"Maximum caption length must be between 1 and 50, not {max_len}.")
        n_best = max(1, min(int(n_best), int(beam)))
        # ResNet18 features + beam search (+ the concept head and the domain probe), batched with concurrent calls
        x = self.image_tensor(image)  # (1, 3, S, S)
        out = self.batched.caption(x, int(beam), int(max_len), n_best, float(length_penalty))
        raw = [(self.vocab.decode(h.tokens), h.logprob) for h in out.hyps]
        return self.postprocess.read(raw, out.concepts, x[0], out.domain)  # fallback, tones, calibration, domain

    # ------------------------------------------------------------------ image + words -> image
    def artists(self) -> dict[str, str]:
        """The artists the VAE's exemplars come from: artwork name -> style key ("Noto Emoji (Google)" -> "noto")."""
        styles = split_config()["styles"]
        return {styles.get(a, {}).get("artwork", a): a for a in self.sources.get("artists", [])}

    def edit(self, image: ImageInput, words: str, name: str | None = None, artist: str | None = None) -> Edited:
        """The emoji in `image` edited with `words`: a colour ("blue"), a skin tone ("dark skin tone") or a whole
        new caption. Its name is read by the captioner unless given; the VAE's encoder reads the drawing under the
        name and its decoder draws it under the name with the words applied (`crossgen.serving.edit`), a colour edit taking
        its shading, in the asked hue, in the drawing's main colour only; a skin-tone edit moves the skin to the
        tone's palette colour. With an artist (an artwork name of `artists()`, or its style key) the new caption is
        drawn whole from that artist's nearest drawing instead. NotAnEmojiError for an image that does not look like
        an emoji, InvalidPromptError / UnknownWordsError for words that cannot be drawn, InvalidRequestError for an
        unknown artist."""
        if not words or not str(words).strip():
            raise InvalidPromptError("Type what to change: a colour (\"blue\"), a skin tone (\"dark skin tone\") or a "
                                     "new caption (\"green heart\").")
        image = load_image(image)  # decoded once: read and drawn from the same pixels
        reading = self.read(image, beam=3, n_best=1)
        if not reading.in_domain:
            raise NotAnEmojiError("This doesn't look like an emoji: crossgen only edits emoji drawings (the same check "
                                  "as Image → Text).")
        name = normalize_text(name) if name and name.strip() else reading.captions[0][0]
        if not name:
            raise InvalidPromptError("No name was read in this image: give the emoji's name to edit it.")
        caption, kind = edited_caption(name, words)
        old, new = (torch.from_numpy(self.text_input(self.encode_prompt(t)))[None].to(self.device) for t in (name, caption))
        if artist:
            return self.redraw_as(artist, name, caption, kind, new)
        x = to_tensor(resize(image, self.vae.config.image_size)).to(self.device)  # (1, 3, S, S)
        if kind == "tone" and self.postprocess.skin_tone is not None:
            # the skin moved to the tone's palette colour, shading kept: 95.9 % of validation tone edits right and the
            # person kept, where the decoder's paint in the skin gets 44.8 % (docs/experiments.md)
            out = retone(x[0], self.postprocess.skin_tone, TONES.index(PHRASE.findall(caption)[-1]))
        elif kind == "colour":
            # the decoder's drawing under the new caption with the asked hue on its shading, in the main colour only:
            # validation edits right 58.3 -> 75.0 % against the decoder's own paint (docs/experiments.md)
            drawn = self.vae.redraw(x, old, new)[0]  # (3, S, S)
            out = paint(x[0], recolour(drawn, normalize_text(words)), colour_mask(x[0]))
        else:
            out = self.vae.redraw(x, old, new)[0]
        return Edited(to_pil(out[None])[0], name, caption, kind)

    @torch.inference_mode()
    def redraw_as(self, artist: str, name: str, caption: str, kind: str, text: torch.Tensor) -> Edited:
        """An edit's caption (its text input (1, text_in)) drawn whole from the latent of `artist`'s nearest drawing."""
        artists = self.artists()
        style = artists.get(artist, artist if artist in artists.values() else None)
        if style is None:
            raise InvalidRequestError(f"Unknown artist {artist!r}: one of {', '.join(artists)}.")
        row = self.vae.nearest_of_artist(text[0], self.sources["artists"].index(style))
        if row < 0:
            raise InvalidRequestError(f"{artist} has no drawing this VAE can draw from.")
        drawn = self.vae.decode(self.vae.exemplar_z[row:row + 1], self.vae.condition(text)).sigmoid()  # (1, 3, S, S)
        return Edited(to_pil(self.paint_tone(caption, drawn))[0], name, caption, kind, self.credit(row))

    # ------------------------------------------------------------------ both ways, and between prompts
    def prompt_words(self, prompt: str) -> PromptWords:
        """Each word of a prompt labelled known/unknown, with suggestions for the unknown ones.
        InvalidPromptError only for an empty or over-long prompt (unknown words are not an error here)."""
        return analyse(self.text_encoder, prompt)

    def interpolate(self, prompt_a: str, prompt_b: str, k: int = 8, seed: int | None = None,
                    temperature: float = 1.0) -> Interpolation:
        """k images walking from prompt_a to prompt_b: the two prompts' conditions are walked and one latent path
        from the seed (z0 -> z1) is slerped (`decode_path`). The first frame is `generate(prompt_a, seed=seed)`'s first image;
        the same prompts, k, seed and temperature give the same frames."""
        if not MIN_FRAMES <= int(k) <= MAX_FRAMES:
            raise InvalidRequestError(f"Number of frames must be between {MIN_FRAMES} and {MAX_FRAMES}, not {k}.")
        if not 0.0 <= float(temperature) <= 3.0:
            raise InvalidRequestError(f"Temperature must be between 0 and 3, not {temperature}.")
        seed = resolve_seed(seed)
        start, end = self.encode_prompt(prompt_a), self.encode_prompt(prompt_b)
        x = decode_path(self.vae, self.text_input(start), self.text_input(end), int(k), seed, float(temperature))
        return Interpolation(to_pil(x), seed, start, end)

    def caption_images(self, images: list[ImageInput], beam: int = 3) -> list[tuple[str, float]]:
        """The best caption (and its log-probability) of each image, e.g. to read back generated images."""
        if not images:
            raise InvalidRequestError("No images to caption.")
        if len(images) > MAX_IMAGES:
            raise InvalidRequestError(f"At most {MAX_IMAGES} images can be captioned at once, not {len(images)}.")
        return [self.image_to_text(im, beam=beam, n_best=1)[0] for im in images]


_cache: dict[tuple[str, str], Pipeline] = {}
_lock = threading.Lock()


def load(checkpoints: str | Path | None = None, device: str | torch.device = "auto") -> Pipeline:
    """The Pipeline for a checkpoint folder, loaded once per (folder, device) and shared across threads.

    checkpoints: folder with manifest.json (default: `CROSSGEN_CHECKPOINTS` or the repo's checkpoints/).
    device: "auto" (CUDA if available, else CPU; `CROSSGEN_DEVICE` overrides), "cpu", "cuda", ...
    """
    directory = Path(checkpoints) if checkpoints is not None else default_checkpoints()
    key = (str(directory.resolve()), str(get_device(device)))
    with _lock:  # one loader at a time; everyone else waits for and shares its result
        if key not in _cache:
            _cache[key] = Pipeline.from_checkpoints(directory, key[1])
        return _cache[key]


def checkpoint_info(checkpoints: str | Path | None = None) -> dict:
    """metrics.json of a checkpoint folder ({} when absent) — for the app's "About these models"."""
    path = Path(checkpoints or default_checkpoints()) / "metrics.json"
    try:
        return load_json(path) if path.is_file() else {}
    except CheckpointError:
        return {}
