"""Reports read only the results store: they never import a benchmark."""
