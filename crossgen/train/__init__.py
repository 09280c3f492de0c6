"""Training stages: `python -m crossgen.train {word2vec,features,vae,captioner,all}`."""
from .captioner import CaptionerTrainConfig, train_captioner
from .features import FeatureTrainConfig, train_features
from .vae import VAETrainConfig, add_exemplars, train_vae
from .word2vec import train_word2vec

__all__ = ["train_word2vec", "train_features", "train_vae", "add_exemplars", "train_captioner",
           "FeatureTrainConfig", "VAETrainConfig", "CaptionerTrainConfig"]
