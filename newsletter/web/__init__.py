"""HTML pages: thin blueprints that parse the request, call one domain function, render."""
