"""Cluster monitoring over engines users already run (Dask, Ray): providers find the nodes
and sample each host with our own collectors; the cluster monitor fans out, stores each
node's samples under its name and tells live readers (docs/CLUSTER.md)."""
