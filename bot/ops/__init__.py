"""Operations: the ops port (health, readiness, metrics), telemetry hooks and log formats."""
