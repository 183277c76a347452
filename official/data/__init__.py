"""Data stage: preprocessing, TFDS pipelines, the embedded demo datasets, the transfer
registry and image folders.

Importing the package registers the TFDS builders demo_pretrain, demo_texture,
demo_novel_shapes, demo_digits and birdsnap, so `tfds.load(name, data_dir=...)` serves them.
"""

from official.data import birdsnap
from official.data import datasets
from official.data import demo
from official.data import input_pipeline
from official.data import preprocessing
