"""Data stage: preprocessing, TFDS pipelines, the demo datasets, the transfer registry and image
folders; importing it registers the demo and birdsnap TFDS builders."""

from official.data import birdsnap
from official.data import datasets
from official.data import demo
from official.data import input_pipeline
from official.data import preprocessing
