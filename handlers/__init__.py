"""The edges: the /ws loop, HTTP routes, the SMS webhook. Decode, authorise, call the domain, encode."""
