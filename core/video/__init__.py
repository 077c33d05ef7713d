"""Image and video decoding, resizing and encoding (PyAV, Pillow)."""
