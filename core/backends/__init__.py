"""Model backends: one module or package per model, behind the same job run."""
