"""One scrape's reply: the families of a view, encoded by prometheus_client in the format
the scraper's ``Accept`` header asks for (OpenMetrics, else the 0.0.4 text format).

prometheus_client's encoders cost about 10 µs per series in pure Python: a 16-node cluster
with 8 GPUs each (4 600 series) takes 40-60 ms. The server runs them on a thread, but one
thread holding the GIL that long still stalls the event loop, which must win the GIL back
after every wait. So the encoding is cut into pieces of about :data:`PIECE_SECONDS` each,
family by family; the server sends each piece before the next is made (the loop runs in
between). The text format is the concatenation of its families; an OpenMetrics body is
that too, ended by one ``# EOF`` line, which the pieces leave to the last one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.exposition import choose_encoder

from tracklab_jupyter.prometheus.families import FamilySeries, ScrapeCollector, build_families
from tracklab_jupyter.prometheus.view import ScrapeView

#: Encoding time of one piece of the reply (a family is never split).
PIECE_SECONDS = 0.002
_EOF = b"# EOF\n"


class TooManySeries(ValueError):
    """The exposition would hold more series than the server's limit."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the exposition has {count} series, more than max_prometheus_series "
                         f"({limit})")
        self.count = count
        self.limit = limit


def render_pieces(view: ScrapeView, accept: str = "", max_series: int | None = None
                  ) -> tuple[Iterator[bytes], str]:
    """``(pieces of the body, content type)`` of the exposition of ``view``. The families
    are built now; :class:`TooManySeries` is raised here, before anything is encoded, when
    they would exceed ``max_series``. Each piece is encoded when it is asked for."""
    families, count = build_families(view)
    if max_series is not None and count > max_series:
        raise TooManySeries(count, max_series)
    encoder, content_type = choose_encoder(accept)
    openmetrics = content_type.startswith("application/openmetrics-text")

    def pieces() -> Iterator[bytes]:
        index = 0
        while index < len(families):
            started = time.perf_counter()
            parts: list[bytes] = []
            while True:  # at least one family per piece, however large
                parts.append(_encode(encoder, families[index], openmetrics))
                index += 1
                if index == len(families) or time.perf_counter() - started >= PIECE_SECONDS:
                    break
            yield b"".join(parts)
        if openmetrics:
            yield _EOF

    return pieces(), content_type


def _encode(encoder: Callable[[Any], bytes], family: FamilySeries, openmetrics: bool) -> bytes:
    data = encoder(ScrapeCollector([family]))
    if openmetrics:
        assert data.endswith(_EOF), "OpenMetrics output without its # EOF line"
        data = data[:-len(_EOF)]
    return data


def render(view: ScrapeView, accept: str = "", max_series: int | None = None
           ) -> tuple[bytes, str]:
    """``(body, content type)`` of the exposition of ``view``, in one piece."""
    pieces, content_type = render_pieces(view, accept, max_series)
    return b"".join(pieces), content_type
