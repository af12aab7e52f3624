"""Accelerator backends (NVIDIA via NVML; others plug in through base.AcceleratorBackend)."""
