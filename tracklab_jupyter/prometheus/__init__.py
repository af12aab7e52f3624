"""The Prometheus exposition: catalogue names mapped to Prometheus families (``names``),
what one scrape reads (``snapshot``), the families built from it (``families``) and the
encoded reply (``exposition``)."""
