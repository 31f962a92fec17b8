"""Data: read task data files (``load_data``) and real unlabelled text (``stdlib_sentences``)."""

from frugalml.data.corpus import stdlib_sentences
from frugalml.data.formats import FORMATS, Dataset, load_data

__all__ = ["FORMATS", "Dataset", "load_data", "stdlib_sentences"]
