"""What more than one web front door needs, below them all: the JSON response class, the
WebSocket handshake (its key check and connection id), the bounded read-ahead inbox of a
WebSocket session, and the paths one door names for another. Front doors import it; it
imports no front door."""
