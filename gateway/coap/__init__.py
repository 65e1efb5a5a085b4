"""The CoAP (RFC 7252) front-end: a fast path of our own plus aiocoap on the same socket.

Entry point: `gateway.coap.server.run_coap_server`. Design notes: docs/coap.md.
"""
