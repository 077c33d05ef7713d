"""The MimicMotion denoising pipeline with progressive latent fusion."""
