"""Sans-I/O SIP (RFC 3261 and friends): bytes and `now` in, messages, events and one timer
deadline out. Imports no asyncio and no socket (tests/sip/test_sans_io.py checks it)."""
