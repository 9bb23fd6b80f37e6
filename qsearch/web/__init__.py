"""Web: the server process around the page: sessions, the model service (the only place
`spaces.GPU` appears), the /v1 API, MCP, rendering, evidence and export.
"""
