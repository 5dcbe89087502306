"""Experiment configs: one ``get_config(arg)`` file per model and dataset."""
