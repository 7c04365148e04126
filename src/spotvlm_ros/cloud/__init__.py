"""The cloud path: OpenAI-compatible client, grounding parsers, the local server."""

# The large model the embedded cloud serves, and clients ask for, unless told otherwise.
DEFAULT_CLOUD_MODEL = 'Qwen/Qwen2.5-VL-7B-Instruct'
DEFAULT_PORT = 8000
LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '::1')
