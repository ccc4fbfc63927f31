"""Keys and the signed-then-encrypted envelope."""
