"""Looking at results: the runs table (compare), prediction pictures (predict), training curves (plot)."""
