"""The `stockcast` admin CLI: thin click commands over forecaster.service and jobs."""
