"""Generating cases: the Hypothesis strategies over the conv2d domain, what an implementation
supports, and the tensors a case's seed makes."""
