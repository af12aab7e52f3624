"""One scrape's reply: the families of a view, encoded by prometheus_client in the format
the scraper's ``Accept`` header asks for (OpenMetrics, else the 0.0.4 text format)."""

from __future__ import annotations

from prometheus_client.exposition import choose_encoder

from tracklab_jupyter.prometheus.families import ScrapeCollector, build_families
from tracklab_jupyter.prometheus.view import ScrapeView


class TooManySeries(ValueError):
    """The exposition would hold more series than the server's limit."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the exposition has {count} series, more than max_prometheus_series "
                         f"({limit})")
        self.count = count
        self.limit = limit


def render(view: ScrapeView, accept: str = "", max_series: int | None = None
           ) -> tuple[bytes, str]:
    """``(body, content type)`` of the exposition of ``view``. Raises
    :class:`TooManySeries` before encoding when it would exceed ``max_series``."""
    families, count = build_families(view)
    if max_series is not None and count > max_series:
        raise TooManySeries(count, max_series)
    encoder, content_type = choose_encoder(accept)
    return encoder(ScrapeCollector(families)), content_type  # type: ignore[arg-type]
