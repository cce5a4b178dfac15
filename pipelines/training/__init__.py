"""The training side: data, UNet presets, the training loop and its state, the evaluation classifier and metrics.

The sampling side (schedules, scheduler, pipeline, objective) never imports from here.
"""
