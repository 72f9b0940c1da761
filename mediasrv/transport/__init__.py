"""Thin asyncio adapters: UDP, TCP and TLS listeners, the edge guard that screens their input
(ban list, rate limit, pre-parse) and the driver that pumps the sans-I/O SIP endpoint with the
loop's clock. No call logic lives here."""
