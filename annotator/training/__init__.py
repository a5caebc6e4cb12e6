"""Training SG-One's head: superpixel episodes, the resumable loop and its configuration."""
