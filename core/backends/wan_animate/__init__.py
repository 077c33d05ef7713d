"""Wan2.2-Animate-14B (diffusers' ``WanAnimatePipeline``): its model directory, the reference's preprocessing
(skeleton drawings, face crops, sizes) on our DWPose keypoints, generation, and a tiny model for tests.

Domain floor: imports only core.errors, core.contract.params and core.contract.stages from the vocabulary.
"""
