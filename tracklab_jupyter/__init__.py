"""tracklab-jupyter: live system, GPU and cluster monitoring inside Jupyter."""

from tracklab_jupyter._version import __version__

__all__ = ["__version__", "_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """Tell jupyter_server where the extension lives (imported only by the server)."""
    from tracklab_jupyter.server.extension import TrackLab

    return [{"module": "tracklab_jupyter.server.extension", "app": TrackLab}]
