"""im2col-harness: differential fuzzing of conv2d implementations against torch.nn.Conv2d."""
