"""Fitting a model from a config: train(cfg), callbacks, loggers, the sweep summary."""
