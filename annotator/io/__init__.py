"""Files in and out: images and masks, weights (run time and the set-up conversion), atomic writes."""
