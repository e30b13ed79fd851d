"""Multi-task Keras models built from the configuration."""
