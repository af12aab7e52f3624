"""The Prometheus exposition: catalogue names mapped to Prometheus families (``names``),
what one scrape reads (``view``), the families gathered from it (``families``) and the
encoded reply (``exposition``)."""
