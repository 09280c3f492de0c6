"""What happens to the captioner's n-best list before anyone sees it: the concept-head fallback, the skin-tone
reader and the confidence maps (calibration and the out-of-domain probe), each fitted by `crossgen/train/` and
saved as JSON beside the models.

May import: the base modules and `crossgen/models/`; the serving path, training and the evaluation import it.
"""
