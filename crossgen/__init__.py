"""crossgen: text -> image (Word2Vec + conditional VAE) and image -> text (ResNet18 + LSTM)."""
from .checkpoint import load_model, save_model, verify_manifest, write_manifest
from .device import get_device
from .errors import (CheckpointError, CrossgenError, ImageTooLargeError, InvalidImageError, InvalidPromptError,
                     InvalidRequestError, NotAnEmojiError, UnknownWordsError)
from .imaging.matte import transparent
from .models.captioner import Captioner, CaptionerConfig, Hypothesis, Vocab
from .models.image_features import FeatureConfig, ImageFeatures
from .models.text_encoder import TextEncoder, Word2VecConfig
from .models.vae import CVAE, CVAEConfig
from .postprocess.chain import Reading
from .preprocess import load_image, normalize_text, tokenize
from .serving.edit import edited_caption
from .serving.interpolation import Interpolation, slerp, write_gif
from .serving.pipeline import Credit, Edited, Generation, Pipeline, checkpoint_info, default_checkpoints, load
from .serving.prompt_hints import PromptWords, replace_word

__all__ = [
    "load", "Pipeline", "Generation", "Credit", "Reading", "Edited", "edited_caption", "checkpoint_info", "default_checkpoints", "get_device",
    "Interpolation", "slerp", "write_gif", "transparent", "PromptWords", "replace_word",
    "TextEncoder", "Word2VecConfig", "CVAE", "CVAEConfig", "ImageFeatures", "FeatureConfig",
    "Captioner", "CaptionerConfig", "Vocab", "Hypothesis", "save_model", "load_model",
    "write_manifest", "verify_manifest", "load_image", "normalize_text", "tokenize",
    "CrossgenError", "InvalidPromptError", "UnknownWordsError", "InvalidImageError",
    "ImageTooLargeError", "InvalidRequestError", "NotAnEmojiError", "CheckpointError",
]
