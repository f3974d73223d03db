"""Where a campaign's shards run: here, in worker processes on this machine, or on a Dask
cluster, each a `base.Backend`."""
