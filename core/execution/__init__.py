"""Running one job (floor 4): claim, stages, progress, lease, results, webhook delivery. The only place
that holds the domain (models, pose, pipeline, video) and the infrastructure (store, storage) together."""
