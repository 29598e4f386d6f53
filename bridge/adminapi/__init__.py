"""The IDaaS Administration API client and what the bridge builds on it; off unless `admin_api` is set."""
