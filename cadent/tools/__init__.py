"""Small tools shipped beside the daemons: a load generator and an echo server."""
