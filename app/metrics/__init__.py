"""Metrics: what the service counts and how Prometheus reads it.

The code that does the work keeps plain in-process tallies (`tally`): an integer or a bucket
count bumped in place, no lock and no call into a metrics library on the request path. The
exporter (`export`) moves them into prometheus-client's metrics once a second and at every scrape,
and samples the gauges (connections, pools, the board); `catalog` names every metric, `listener`
serves `/metrics`, `activity` counts the users active in the last five minutes, `multiprocess`
gives `--workers N` one shared view."""
