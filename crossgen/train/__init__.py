"""Training stages: `python -m crossgen.train {word2vec,features,vae,captioner,all}`.

Each stage has one training function for every data source; a reader passed to it decides what is read
(`Emoji*Data`: the built emoji set in memory; `Streamed*Data`: COCO/Flickr/a folder decoded on the fly).

May import: the base modules, `crossgen/models/`, `crossgen/postprocess/` (what it fits) and `crossgen/data/`;
never the serving path or the evaluation.
"""
from .captioner import CaptionerTrainConfig, EmojiCaptionerData, StreamedCaptionerData, train_captioner
from .features import EmojiFeatureData, FeatureTrainConfig, StreamedFeatureData, train_features
from .postprocess import fit_postprocessing
from .vae import EmojiVAEData, StreamedVAEData, VAETrainConfig, add_exemplars, train_vae
from .word2vec import train_word2vec

__all__ = ["train_word2vec", "train_features", "train_vae", "add_exemplars", "train_captioner", "fit_postprocessing",
           "FeatureTrainConfig", "VAETrainConfig", "CaptionerTrainConfig", "EmojiFeatureData", "StreamedFeatureData",
           "EmojiVAEData", "StreamedVAEData", "EmojiCaptionerData", "StreamedCaptionerData"]
