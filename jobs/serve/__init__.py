"""`rebuilder serve` in API mode: rebuilderd's v0 API over the published site (docs/api.md)."""
