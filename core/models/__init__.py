"""Model files, architectures and loading."""
