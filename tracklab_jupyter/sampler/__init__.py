"""The sampler thread and the in-process hub."""
