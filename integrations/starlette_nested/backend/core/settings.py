"""Settings shared by the nested package's modules (imported relatively, two levels up)."""

GREETING = "hello from backend.api"
