"""Fine-tuning MimicMotion: data preparation, the triplet dataset, EDM loss, hand weights, the training loop."""
