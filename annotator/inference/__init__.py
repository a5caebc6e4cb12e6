"""Inference: the predictor over a built model, the learning loop it fits, decoding, the feature cache, the CRF,
devices and sharding, and the project-free propagation stream."""
