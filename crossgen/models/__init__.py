"""The networks, each in its own module with the `@dataclass` config saved beside its weights.

The seed's four: `text_encoder` (Word2Vec), `vae` (the composing conditional VAE, with `name_keys`, how its
exemplar table is searched by what a prompt names), `image_features` (ResNet18) and `captioner` (LSTM); and the
two judges only the evaluation loads, `evaluator` and `object_reader`.

May import: the base modules (`crossgen/*.py`, `crossgen/imaging/`) and each other; nothing above.
"""
