"""The cloud path: OpenAI-compatible client, grounding parsers, the local server."""
