"""In-call services: plugins that act on calls only through `mediasrv.call.api.CallControl`.

See services/README.md for the plugin contract; `ServiceHost` is what the server creates.
"""

from mediasrv.services.base import Service, Session
from mediasrv.services.host import ServiceHost
from mediasrv.services.registry import register_service, service_class

__all__ = ["Service", "ServiceHost", "Session", "register_service", "service_class"]
