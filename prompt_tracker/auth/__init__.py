"""Users and accounts: the user model, account functions (create, authenticate, disable) and the users CLI."""
