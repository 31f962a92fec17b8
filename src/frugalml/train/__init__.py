"""Training: recipes for cheaper fine-tuning, and data tools (``frugalml.train.data``)."""
