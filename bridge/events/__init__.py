"""IDaaS events: the envelope as delivered, the catalog of known types, and normalization."""
