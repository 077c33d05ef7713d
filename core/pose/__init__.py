"""DWPose extraction, alignment to the reference body, and confidence-aware drawing."""
