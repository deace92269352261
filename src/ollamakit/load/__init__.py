"""``ollamakit load``: how many people can this server serve? (docs/load.md)

Modules, and what each may depend on::

    engine      when requests are sent: closed loop, Poisson open loop, rate sweep (asyncio only)
    driver      the ONLY module that talks to a server and measures a reply (LoadRequest -> Outcome)
    dataset     what is sent: the shipped "team" set, the bench suite, JSONL/CSV files
    analysis    per-level statistics, SLO goodput, the knee, the answer (pure)
    document    a load run as a history RunDocument
    render      the level table, CSV, Markdown, HTML with inline-SVG charts
    cli         the command
    locust_user a locustfile (imports locust; never imported by the rest)
    locust_cli  --locust-master / --locust-worker: runs Locust, merges its rows into one run
"""
