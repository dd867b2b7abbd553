"""Scheduled work: the pipeline (fetch, retrain, promote, predict) and its APScheduler process."""
