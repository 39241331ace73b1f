"""One adapter per upstream protocol: request and response translation, SSE, errors. No database."""
