"""Thin asyncio adapters: UDP and TCP listeners and the driver that pumps the sans-I/O SIP
endpoint with the loop's clock. No call logic lives here."""
