"""The models a deployment can serve, as clients see them: name, licence, what each is good at.

The parameters of each are in core.contract.params (``PARAMS_BY_MODEL``); the code that runs each is in
core.backends. Torch-free: the gateway lists these at ``GET /models``.
"""

from dataclasses import dataclass

from core.contract.params import MIMICMOTION, WAN_ANIMATE


@dataclass(frozen=True)
class ModelCard:
    name: str
    title: str
    license: str  # of the weights: what an operator may do with the outputs
    summary: str


MODEL_CARDS: dict[str, ModelCard] = {
    MIMICMOTION: ModelCard(
        name=MIMICMOTION,
        title="MimicMotion 1.1 (Stable Video Diffusion + PoseNet)",
        license="Weights: research, academic and education use only (MimicMotion's licence, with SVD's on top).",
        summary="Confidence-aware pose guidance and progressive latent fusion for any length; about 8 GB of GPU "
        "memory at 576x1024 with tiling. Checkpointed and resumable, live previews.",
    ),
    WAN_ANIMATE: ModelCard(
        name=WAN_ANIMATE,
        title="Wan2.2-Animate-14B (Wan-AI)",
        license="Apache-2.0 code and weights: usable in a commercial product (see the model card's use restrictions).",
        summary="A 17 B-parameter video DiT with face-expression and body-pose conditioning, 480p or 720p; bf16 needs "
        "about 48 GB of GPU memory (an 80 GB card), smaller cards offload groups of blocks (slower).",
    ),
}
