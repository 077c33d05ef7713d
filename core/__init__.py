"""The domain library: model files, pose, pipeline, video, jobs. Imports no FastAPI and no Celery."""
