"""Pixel work on drawings that several layers share: `colour` (colour names and repainting in a named colour),
`matte` (the transparent background of a drawing on white) and `augment` (batch augmentation for training).

A base folder like the modules directly under `crossgen/`: may import only those.
"""
