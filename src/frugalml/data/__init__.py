"""Data: read task data files (``load_data``) and real unlabelled text (``stdlib_sentences``,
``file_sentences``)."""

from frugalml.data.corpus import file_sentences, stdlib_sentences
from frugalml.data.formats import FORMATS, Dataset, load_data

__all__ = ["FORMATS", "Dataset", "file_sentences", "load_data", "stdlib_sentences"]
