"""Training defaults that the CLI shows without importing torch (training.md §4.6)."""

HAND_THRESHOLD = 0.5  # a hand counts as reliable when all 21 scores exceed this; not in the paper
HAND_FACTOR = 10.0  # the paper's loss factor inside reliable-hand boxes
P_MEAN = 0.5  # ln(sigma) ~ N(P_MEAN, P_STD^2): MimicMotion per one digest (training.md §1.5); SVD uses 0.7
P_STD = 1.4  # SVD uses 1.6
