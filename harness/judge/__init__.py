"""Judging one output: the references (torch's float64 and an independent NumPy one), the derived
bounds, comparison, gradients, and diagnosis of what a failure depends on."""
