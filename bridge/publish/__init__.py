"""Sinks: Kafka (the destination) and the durable local spool (where events wait when Kafka cannot ack)."""
