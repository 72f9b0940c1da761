"""The operations API: state, control, event stream, OpenAPI description and /metrics."""

from mediasrv.api.app import OperationsApi

__all__ = ["OperationsApi"]
