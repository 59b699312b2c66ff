"""The model, in data-flow order: backbone -> pixel decoder -> mixed-query decoder -> heads ->
matcher / criterion (training) or post-processing (inference). Importing registers everything."""
